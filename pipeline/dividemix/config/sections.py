"""The sections of params.yaml as typed models (data, noise, model, train, ablation): every key,
its type, its range and its default, with the checks that need only its own section."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

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


# Keys read only for the data sets whose images are stored from data.root (folder, clothing1m,
# webvision); of those, the list files only where the user names them (folder).
STORED_ONLY = ("root", "image_size", "resize", "train_crop", "mean", "std")
LISTS_ONLY = ("train_list", "val_list", "test_list", "test2_list", "truth_list")
FOLDER_ONLY = STORED_ONLY + LISTS_ONLY + ("num_classes", "imagenet_val")


# Keys that change how a stage runs but no byte of what it writes: read, but no stage's DVC
# parameter, so that changing them reruns nothing (decode processes, where training holds images).
RESULT_NEUTRAL = ("data.workers", "data.storage", "distributed.rendezvous", "distributed.run_id",
                  "distributed.max_restarts", "distributed.timeout_s", "distributed.local_addr",
                  "distributed.join_timeout_s")


class DataConfig(_Section):
    dataset: str = "digits"
    # Where downloaded archives are kept (and where a user may place them to skip the download).
    raw_dir: str = "data/raw"
    # A mirror for the data set's archive and its md5 (both or neither; default: the official URL).
    url: str | None = None
    md5: str | None = None
    # The image root (folder, clothing1m, webvision) and a folder's list files ("path label" lines).
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
    # The class count: folder (else classes.txt, else 1 + the largest label, with a note), webvision
    # (null: 50, the paper's; samples of a class not below it are dropped from every split).
    num_classes: Annotated[int, Field(ge=2)] | None = None
    # folder: a second test set ("path label" lines), evaluated every epoch like the first.
    test2_list: str | None = None
    # webvision: ImageNet val of the same classes, class-index folders (0..K-1, the official layout)
    # or synset folders (mapped through info/synsets.txt); null: data.root/imagenet/val.
    imagenet_val: str | None = None
    # The training crop's random flip: null is the reference's choice (digits: off, else on); false
    # for images whose orientation carries the label. Read by training, not by download.
    flip: bool | None = None
    # Decode processes of download (null: every core) and how training holds the images: auto
    # (folder, clothing1m, webvision: streamed from disk; digits/CIFAR: in memory), memory, disk.
    # Neither changes a result.
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
    # cifar: the reference's CIFAR step. clothing1m: the Clothing1M step (only the first 2B mixed
    # samples are trained on: Lx + prior penalty) on a class-balanced sample of num_batches x
    # batch_size per network per epoch. webvision: Train_webvision.py, the same step over the whole
    # training set each epoch (no sample). Best-validation weights wherever there is a val set.
    protocol: Literal["cifar", "clothing1m", "webvision"] = "cifar"
    num_batches: PositiveInt = 1000
    # The GPU path (all device-agnostic; off by default so CPU runs stay bit-reproducible).
    amp: bool = False  # bf16 autocast for forward passes
    channels_last: bool = False
    compile: bool = False  # torch.compile the networks
    eval_batch_size: PositiveInt = 1024
    # Beyond the paper, opt-in (defaults: DivideMix byte for byte). augment: paper (every view the
    # weak crop + flip) or weak_strong (AugDesc-WS: weak views guess and refine, strong views, the
    # weak transform then strong_policy per image, are MixMatch's inputs). strong_policy: one of
    # torchvision's (images.views.weak_strong.POLICIES), read with weak_strong only.
    augment: Literal["paper", "weak_strong"] = "paper"
    strong_policy: Literal["autoaugment_cifar10", "autoaugment_imagenet", "autoaugment_svhn", "randaugment",
                           "trivialaugment_wide"] = "autoaugment_cifar10"
    # selection: gmm (DivideMix's mixture) or uniform_jsd (UNICON's per-class quotas of the lowest
    # Jensen-Shannon divergence; method.selection). selection_ensemble: uniform_jsd's divergence from
    # both networks' mean prediction (UNICON's; both divisions then equal); false: each its own.
    selection: Literal["gmm", "uniform_jsd"] = "gmm"
    selection_ensemble: bool = False  # (the checks across keys: config.Config._switches_agree)

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


class DistributedConfig(_Section):
    """One run over several processes and machines, on torch.distributed: each process holds both
    networks data-parallel (DDP) and trains on its share of every step's batch, so the global
    batch stays train.batch_size. 1 x 1 is one process, the single-device path."""

    # Processes on each machine (one per GPU; on a CPU, gloo processes), and machines, all
    # launched through torchrun's elastic agent. Their product changes the per-process batches.
    processes_per_machine: PositiveInt = 1
    machines: PositiveInt = 1
    # "host:port" of the c10d rendezvous (the first machine's address and a free port), needed
    # with several machines; null: this machine alone. Changes no result.
    rendezvous: str | None = None
    # The rendezvous id (each launch adds its stage and a fresh attempt id): two runs at once on one
    # host need two.
    run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "dividemix"
    # torchrun's restarts of a failed process group; each restart resumes from the last epoch.
    max_restarts: NonNegativeInt = 0
    # Collectives' timeout: a dead peer is noticed at once, a hung one after this many seconds.
    timeout_s: PositiveInt = 1800
    # The address this machine's agent gives the others (null: its host name; 127.0.0.1 when the
    # rendezvous is on loopback). Changes no result.
    local_addr: str | None = None
    # How long a rendezvous waits for every machine, and `dividemix join` for the next stage.
    join_timeout_s: PositiveInt = 600
    # BatchNorm statistics over the whole global batch (SyncBatchNorm: CUDA only, refused on a
    # CPU) instead of each process's share; no effect with one process.
    sync_batchnorm: bool = False

    @field_validator("rendezvous")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"[A-Za-z0-9_.:\[\]-]+:[0-9]{1,5}", value) is None:
            raise ValueError("must be host:port (the first machine's address and a free port, e.g. 10.0.0.1:29400)")
        return value
