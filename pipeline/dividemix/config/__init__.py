"""One typed, validated configuration: the single source of truth for every parameter.

`params.yaml` is read once, through `load_config`, by every stage. Unknown keys, wrong types and
out-of-range values raise `ConfigError` whose message is one line naming the key and what is
allowed, before any work is done. The sections' keys are in `sections`; here, the whole
(`Config`, with the checks across keys) and its loading. May import: catalog. Never: torch, the
data sets, the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError, model_validator

from dividemix import catalog
from dividemix.config.sections import (  # noqa: F401  (the config's public names, in one place)
    FOLDER_ONLY,
    LABEL_FILE_SUFFIXES,
    LISTS_ONLY,
    RESULT_NEUTRAL,
    STORED_ONLY,
    AblationConfig,
    ConfigError,
    DataConfig,
    DistributedConfig,
    ModelConfig,
    NoiseConfig,
    TrainConfig,
    _Section,
)


class Config(_Section):
    data: DataConfig = DataConfig()
    noise: NoiseConfig = NoiseConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    ablation: AblationConfig = AblationConfig()
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="after")
    def _machines_meet_somewhere(self) -> "Config":
        spread = self.distributed
        if spread.machines > 1 and spread.rendezvous is None:
            raise ValueError("distributed.rendezvous: needed with several machines (distributed.machines "
                             f"{spread.machines}): the first machine's host:port, which every machine joins")
        if spread.sync_batchnorm and self.train.device == "cpu":
            raise ValueError("distributed.sync_batchnorm: SyncBatchNorm runs on CUDA only (train.device is cpu); "
                             "set it false, or train on GPUs")
        return self

    @model_validator(mode="after")
    def _data_source_complete(self) -> "Config":
        """The data section's keys that go together (messages name the key)."""
        data = self.data
        facts = catalog.DATASETS[data.dataset]
        if facts.stored:
            _check_stored(data, facts)
        else:
            _only_for(data, FOLDER_ONLY, "is 'folder', 'clothing1m' or 'webvision'")
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


    @model_validator(mode="after")
    def _switches_agree(self) -> "Config":
        """The opt-in switches (train.augment, train.selection) with the keys they meet."""
        train = self.train
        if train.selection_ensemble and train.selection != "uniform_jsd":
            raise ValueError(f"train.selection_ensemble: read by train.selection 'uniform_jsd' only (it is "
                             f"{train.selection!r}); set it to false")
        if train.selection == "uniform_jsd" and train.loss_history > 1:
            raise ValueError(f"train.loss_history: train.selection 'uniform_jsd' keeps no loss history; allowed: 1 "
                             f"(it is {train.loss_history})")
        if train.augment == "weak_strong" and not self.ablation.augmentation:
            raise ValueError("train.augment: 'weak_strong' needs ablation.augmentation true (its weak views are the "
                             "training transform); allowed with the ablation: 'paper'")
        return self


def _only_for(data: DataConfig, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if getattr(data, key) is not None:
            raise ValueError(f"data.{key}: only read when data.dataset {where} (it is {data.dataset!r}); set it to null")


def _check_stored(data: DataConfig, facts: catalog.DatasetFacts) -> None:
    """The keys of a data set stored from data.root: what each layout requires and refuses."""
    if data.root is None:
        raise ValueError(f"data.root: required when data.dataset is {data.dataset!r}")
    if facts.lists:
        for key in ("train_list", "test_list", "image_size"):
            if getattr(data, key) is None:
                raise ValueError(f"data.{key}: required when data.dataset is 'folder'")
    else:  # a published layout: its own files name the splits
        _only_for(data, LISTS_ONLY, "is 'folder' (the published layouts name their own splits)")
    if data.dataset != "webvision":
        _only_for(data, ("imagenet_val",), "is 'webvision'")
    if facts.classes is not None:
        _only_for(data, ("num_classes",), f"has no fixed class count ({data.dataset} has {facts.classes})")
    if data.resize is not None and data.image_size is not None and data.resize < data.image_size:
        raise ValueError(f"data.resize: {data.resize} is smaller than data.image_size {data.image_size};"
                         " the crop is taken from the stored image (resize >= image_size)")
    if (data.mean is None) != (data.std is None):
        raise ValueError("data.mean: data.mean and data.std go together (both, or both null: measured)")


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


def parse_params_text(text: str, *, source: str = "params.yaml") -> Any:
    """The nested mapping of a parameter file's `text`, read as DVC reads it; ConfigError (one line)
    when it is not YAML.

    DVC reads and writes params.yaml with ruamel.yaml's safe loader, YAML 1.2: `dvc exp run -S
    train.p_threshold=0.000001` writes `1e-06`, a number in YAML 1.2 but a string in PyYAML's
    YAML 1.1. Reading it as DVC does keeps the stages and DVC agreeing on every value; a genuinely
    quoted "0.5" stays a string, and strict validation still refuses it.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None


def read_params(path: str | Path = "params.yaml") -> Any:
    """The nested mapping of the parameter file at `path`, unvalidated (`parse_params_text`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameter file not found") from None
    return parse_params_text(text, source=str(path))


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read (as DVC does: YAML 1.2) and validate `params.yaml`; raise `ConfigError` (one line) on any problem."""
    return parse_config(read_params(path), source=str(path))


def select(config: Config, keys: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The values of dotted `keys` ("train.lr"), e.g. to record what a stage read in its outputs."""
    dumped = config.model_dump(mode="json")
    out = {}
    for key in keys:
        section, name = key.split(".")
        out[key] = dumped[section][name]
    return out
