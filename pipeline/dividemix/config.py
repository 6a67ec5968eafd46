"""One typed, validated configuration: the single source of truth for every parameter.

`params.yaml` is read once, through `load_config`, by every stage. Unknown keys, wrong types and
out-of-range values raise `ConfigError` whose message is one line naming the key and what is
allowed, before any work is done.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dividemix import catalog


class ConfigError(ValueError):
    """A parameter is missing, unknown, mistyped or out of range (message: one line)."""


class _Section(BaseModel):
    # strict: "0.5" (a string) is not a number and 2.0 is not an integer; extra: unknown keys
    # are errors, never silently ignored (a key the code never reads is a bug in the experiment).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
OpenFraction = Annotated[float, Field(gt=0.0, lt=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]

LABEL_FILE_SUFFIXES = (".pt", ".parquet", ".csv")  # noise.file: CIFAR-N .pt, or sample_index/label columns


FOLDER_ONLY = ("root", "train_list", "val_list", "test_list", "image_size", "resize", "train_crop", "mean", "std",
               "truth_list")


# Keys that change how a stage runs but no byte of what it writes: read, but no stage's DVC
# parameter, so that changing them reruns nothing (decode processes, where training holds images).
RESULT_NEUTRAL = ("data.workers", "data.storage")


class DataConfig(_Section):
    dataset: str = "digits"
    # Where downloaded archives are kept (and where a user may place them to skip the download).
    raw_dir: str = "data/raw"
    # A mirror for the data set's archive and its md5 (both or neither; default: the official URL).
    url: str | None = None
    md5: str | None = None
    # data.dataset 'folder': the image root and its list files ("relative/path.jpg label" per line).
    root: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    # The network's input side: a crop of the stored image (random for training, centred for
    # evaluation), as the reference's RandomCrop(224) / CenterCrop(224) of Clothing1M.
    image_size: PositiveInt | None = None
    # The stored side: every image is resized with its short side to `resize` (the reference's
    # Resize(256)) and its centre square kept; null: round(image_size * 8 / 7) (256 for 224).
    resize: PositiveInt | None = None
    train_crop: Literal["random", "random_resized"] | None = None  # folder; null: random (Clothing1M's)
    # Normalisation constants as fractions of 255 (the reference's for Clothing1M or ImageNet);
    # null: measured on the training images by download.
    mean: Annotated[list[Fraction], Field(min_length=3, max_length=3)] | None = None
    std: Annotated[list[PositiveFloat], Field(min_length=3, max_length=3)] | None = None
    # Optional verified subset: "path label" lines giving the true label of some training images
    # (Clothing1M ships ~48k). Read by evaluate and report only, never by training.
    truth_list: str | None = None
    # Decode processes of download (null: every core) and how training holds the images: auto
    # (folder: streamed from disk; digits/CIFAR: in memory), memory, disk. Neither changes a result.
    workers: PositiveInt | None = None
    storage: Literal["auto", "memory", "disk"] = "auto"

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in catalog.DATASETS:
            raise ValueError(f"unknown data set {value!r}; allowed: {', '.join(catalog.DATASETS)}")
        return value

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://", "file://")):
            raise ValueError("must start with https://, http:// or file://")
        return value

    @field_validator("md5")
    @classmethod
    def _md5_hex(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"[0-9a-fA-F]{32}", value) is None:
            raise ValueError("must be 32 hexadecimal digits (the archive's md5)")
        return value.lower() if value is not None else None


class NoiseConfig(_Section):
    # sym: the reference (a picked sample's new label may equal its true one); sym_true: the
    # appendix's "true noise" (always another class); asym: the data set's class map; file: the
    # noisy labels are read from noise.file (CIFAR-N .pt with noise.key, Parquet or CSV).
    mode: Literal["none", "sym", "sym_true", "asym", "file"] = "sym"
    rate: Fraction = 0.5
    seed: NonNegativeInt = 1
    file: str | None = None
    key: str | None = None

    @field_validator("file")
    @classmethod
    def _file_under_labels(cls, value: str | None) -> str | None:
        # Under labels/: the noise stage's DVC dependency, so a changed file reruns the stage.
        if value is None:
            return value
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or path.parts[0] != "labels":
            raise ValueError("must be a path under labels/ (the noise stage's DVC dependency), e.g. labels/CIFAR-10_human.pt")
        if path.suffix not in LABEL_FILE_SUFFIXES:
            raise ValueError(f"must end in {', '.join(LABEL_FILE_SUFFIXES)} (CIFAR-N .pt, or sample_index/label columns)")
        return value


class ModelConfig(_Section):
    arch: str = "cnn_small"
    # A local file of pretrained weights (resnet50: torchvision's ImageNet state dict); nothing
    # is downloaded at run time.
    pretrained: str | None = None

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in catalog.MODELS:
            raise ValueError(f"unknown model {value!r}; allowed: {', '.join(sorted(catalog.MODELS))}")
        return value


class TrainConfig(_Section):
    epochs: PositiveInt = 30
    warmup_epochs: PositiveInt = 10
    lr: PositiveFloat = 0.02
    lr_drop_epoch: NonNegativeInt = 15
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    batch_size: PositiveInt = 64
    alpha: PositiveFloat = 4.0
    T: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    lambda_u: NonNegativeFloat = 25.0
    p_threshold: OpenFraction = 0.5
    rampup_epochs: PositiveInt = 5
    conf_penalty: bool = False
    loss_history: PositiveInt = 1
    seed: NonNegativeInt = 123
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # cifar: the reference's CIFAR step. clothing1m: the Clothing1M/WebVision step (only the first
    # 2B mixed samples are trained on: Lx + prior penalty), a class-balanced sample of
    # num_batches x batch_size per network per epoch, and best-validation weights for the test.
    protocol: Literal["cifar", "clothing1m"] = "cifar"
    num_batches: PositiveInt = 1000
    # The GPU path (all device-agnostic; off by default so CPU runs stay bit-reproducible).
    amp: bool = False  # bf16 autocast for forward passes
    channels_last: bool = False
    compile: bool = False  # torch.compile the networks
    eval_batch_size: PositiveInt = 1024

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_before_end(cls, value: int, info: ValidationInfo) -> int:
        # A field validator (epochs is declared first) so the error names train.warmup_epochs.
        epochs = info.data.get("epochs")
        if epochs is not None and value >= epochs:
            raise ValueError(f"must be smaller than train.epochs ({epochs})")
        return value


    @field_validator("protocol")
    @classmethod
    def _clothing_has_no_history(cls, value: str, info: ValidationInfo) -> str:
        # Each Clothing1M epoch divides a freshly drawn sample: there is no per-sample history.
        history = info.data.get("loss_history")
        if value == "clothing1m" and history is not None and history > 1:
            raise ValueError(f"'clothing1m' divides a new sample each epoch: needs train.loss_history 1, not {history}")
        return value


class AblationConfig(_Section):
    """The paper's Table 5 ablations; all true is DivideMix."""

    co_divide: bool = True  # false: each network trains on its own division
    label_refinement: bool = True  # false: labeled targets are the noisy one-hot labels
    co_guessing: bool = True  # false: unlabeled targets are guessed by the trained network alone
    augmentation: bool = True  # false: training batches use the test transform
    ensemble_test: bool = True  # false: test with net1 alone


class Config(_Section):
    data: DataConfig = DataConfig()
    noise: NoiseConfig = NoiseConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    ablation: AblationConfig = AblationConfig()

    @model_validator(mode="after")
    def _data_source_complete(self) -> "Config":
        """The data section's keys that go together (messages name the key)."""
        data = self.data
        if catalog.DATASETS[data.dataset].folder:
            for key in ("root", "train_list", "test_list", "image_size"):
                if getattr(data, key) is None:
                    raise ValueError(f"data.{key}: required when data.dataset is 'folder'")
            if data.resize is not None and data.resize < data.image_size:
                raise ValueError(f"data.resize: {data.resize} is smaller than data.image_size {data.image_size};"
                                 " the crop is taken from the stored image (resize >= image_size)")
            if (data.mean is None) != (data.std is None):
                raise ValueError("data.mean: data.mean and data.std go together (both, or both null: measured)")
        else:
            for key in FOLDER_ONLY:
                if getattr(data, key) is not None:
                    raise ValueError(
                        f"data.{key}: only read when data.dataset is 'folder' (it is {data.dataset!r}); set it to null"
                    )
        if (data.url is None) != (data.md5 is None):
            missing = "data.md5" if data.md5 is None else "data.url"
            raise ValueError(f"{missing}: data.url and data.md5 go together (a mirror and its archive's md5, or both null)")
        if data.url is not None and not catalog.DATASETS[data.dataset].downloads:
            downloading = ", ".join(name for name, facts in catalog.DATASETS.items() if facts.downloads)
            raise ValueError(f"data.url: data set {data.dataset!r} downloads nothing; allowed only for {downloading}")
        return self

    @model_validator(mode="after")
    def _noise_defined_for_dataset(self) -> "Config":
        noise, dataset = self.noise, self.data.dataset
        if noise.mode == "asym" and not catalog.DATASETS[dataset].asym:
            raise ValueError(
                f"noise.mode 'asym' is not defined for data set {dataset!r}; allowed: none, sym, sym_true, file"
            )
        if noise.mode == "file" and noise.file is None:
            raise ValueError("noise.file: required when noise.mode is 'file' (a label file under labels/)")
        if noise.mode != "file":
            for key in ("file", "key"):
                if getattr(noise, key) is not None:
                    raise ValueError(f"noise.{key}: only read when noise.mode is 'file' (it is {noise.mode!r}); set it to null")
        if noise.file is not None and noise.file.endswith(".pt") and noise.key is None:
            raise ValueError(
                "noise.key: required for a .pt label file (CIFAR-10N: aggre_label, worse_label, random_label1..3, "
                "clean_label; CIFAR-100N: noisy_label, clean_label)"
            )
        if noise.file is not None and not noise.file.endswith(".pt") and noise.key is not None:
            raise ValueError("noise.key: only read for a .pt label file (Parquet and CSV have a label column); set it to null")
        return self


def _describe(error: dict[str, Any], section_path: tuple[Any, ...]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if not section_path:  # a check across sections: its message names the keys involved
        return message
    key = ".".join(str(part) for part in section_path)
    kind = error["type"]
    if kind == "extra_forbidden":
        model = Config
        for part in section_path[:-1]:
            model = model.model_fields[part].annotation  # type: ignore[assignment]
        allowed = ", ".join(model.model_fields)
        return f"{key}: unknown key; allowed keys here: {allowed}"
    return f"{key}: {message} (got {error.get('input')!r})"


def parse_config(raw: Any, *, source: str = "params") -> Config:
    """Validate a nested mapping (as read from params.yaml) into a `Config`; the first problem
    raises `ConfigError` (one line)."""
    errors = config_errors(raw, source=source)
    if errors:
        raise ConfigError(errors[0])
    return Config.model_validate(raw or {})


def config_errors(raw: Any, *, source: str = "params") -> list[str]:
    """Every problem of a nested mapping, one line each naming the key (empty: valid).

    Checks across sections (`model_validator`s) run only once every key is valid on its own, so
    a list can name several keys at once but never a consequence of an earlier error.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return [f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}"]
    try:
        Config.model_validate(raw)
    except ValidationError as exc:
        return [f"{source}: {_describe(error, tuple(error['loc']))}" for error in exc.errors()]
    return []


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate `params.yaml`; raise `ConfigError` (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameter file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    return parse_config(raw, source=str(path))


def select(config: Config, keys: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The values of dotted `keys` ("train.lr"), e.g. to record what a stage read in its outputs."""
    dumped = config.model_dump(mode="json")
    out = {}
    for key in keys:
        section, name = key.split(".")
        out[key] = dumped[section][name]
    return out
