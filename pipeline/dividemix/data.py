"""Data sets: preparation on disk, loading onto the device, batched augmentation on tensors.

A data set is a `DatasetSpec`: how to prepare it (download or copy into `data/prepared/`), its
classes, normalisation, training augmentation and asymmetric-noise map. The prepared folder holds
uint8 image arrays and, in a file of its own, the true training labels (`train_truth.npy`), which
only the noise stage (to corrupt them) and evaluation (to judge) ever open.

Data sets:
- `digits`: scikit-learn's bundled 8x8 digits (offline).
- `cifar10`, `cifar100`: the official python archives, downloaded once into `data.raw_dir` (or
  placed there by the user), verified by md5, read in memory (no extraction to disk) in
  torchvision's order (data_batch_1..5, then test_batch; CIFAR-100: train, test, fine labels).
- `folder`: your own images (the layout of Clothing1M): `data.root` plus list files of
  "relative/path.jpg label" lines. The training list's labels are the *given* (already noisy)
  labels: there is no training truth. Images are decoded, resized to data.image_size square and
  stored as uint8 arrays, so the whole set lives on the device as for CIFAR: fine up to a few
  hundred thousand images at modest sizes (100,000 x 3 x 64 x 64 is 1.2 GB). Clothing1M's
  million images at 224 x 224 (150 GB) would need a streaming loader, which this project does not have.

Layout of a prepared folder::

    meta.json                 data set name, classes, image shape, pixel scale, mean/std, sizes,
                              has_truth, has_val (written last: it marks completion)
    train_images.npy          (N, C, H, W) uint8
    train_truth.npy           (N,) int64   -- true training labels: never read by training
                                              (absent for folder data sets: truth unknown)
    train_given_labels.npy    (N,) int64   -- folder data sets only: the training list's labels
                                              (already noisy); read by the noise stage only
    val_images.npy            (V, C, H, W) uint8 -- a clean validation set (folder data sets with
    val_labels.npy            (V,) int64         data.val_list); V = 0 (empty files) otherwise
    test_images.npy           (M, C, H, W) uint8
    test_labels.npy           (M,) int64   -- the held-out clean test set, used to report accuracy
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import torch

from dividemix.io import atomic_path, file_digest, write_atomic, write_json_atomic

if TYPE_CHECKING:
    from dividemix.config import DataConfig

TRAIN_IMAGES = "train_images.npy"
TRAIN_TRUTH = "train_truth.npy"
TEST_IMAGES = "test_images.npy"
TEST_LABELS = "test_labels.npy"
TRAIN_GIVEN = "train_given_labels.npy"
VAL_IMAGES = "val_images.npy"
VAL_LABELS = "val_labels.npy"
META = "meta.json"


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a data set."""

    name: str
    num_classes: int
    classes: tuple[str, ...]
    pixel_scale: float  # the uint8 value that means "full intensity" (16 for digits, 255 for photos)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # random translation of up to this many pixels (zero padding, then crop)
    hflip: bool  # random horizontal flip (never for digits: a mirrored digit is another digit)
    asym_map: dict[int, int] | None = field(default=None)

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        """Write the prepared folder `dest`; `data` is the config's data section (sources, paths)."""
        raise NotImplementedError


@dataclass(frozen=True)
class DigitsSpec(DatasetSpec):
    """scikit-learn's bundled 8x8 digits: offline, 1,797 images, fixed stratified 1,437/360 split."""

    n_test: int = 360
    split_seed: int = 0

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = bunch.images.astype(np.uint8)[:, None, :, :]  # values 0..16
        labels = bunch.target.astype(np.int64)
        train_x, test_x, train_y, test_y = train_test_split(
            images, labels, test_size=self.n_test, stratify=labels, random_state=self.split_seed
        )
        return write_prepared(self, dest, train_x, train_y, test_x, test_y)


def prepare_dataset(data: "DataConfig", dest: Path) -> dict:
    """The download stage: prepare `data.dataset` into `dest` (a fresh folder) and return its meta."""
    return DATASETS[data.dataset].prepare(Path(dest), data)


def write_prepared(
    spec: DatasetSpec,
    dest: Path,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    has_truth: bool = True,
    extra_meta: dict | None = None,
) -> dict:
    """Write a prepared folder; every file atomically, meta.json last (it marks completion).

    `has_truth=False` (folder data sets): `train_labels` are the given, already noisy labels and
    go to train_given_labels.npy; no train_truth.npy is written. `extra_meta` overrides the
    spec's meta entries (a folder data set's classes, mean and std are measured, not known).
    """
    dest.mkdir(parents=True, exist_ok=True)
    arrays = {
        TRAIN_IMAGES: np.ascontiguousarray(train_images, dtype=np.uint8),
        TRAIN_TRUTH if has_truth else TRAIN_GIVEN: np.ascontiguousarray(train_labels, dtype=np.int64),
        TEST_IMAGES: np.ascontiguousarray(test_images, dtype=np.uint8),
        TEST_LABELS: np.ascontiguousarray(test_labels, dtype=np.int64),
    }
    # The validation files always exist (empty without a validation set), so that dvc.yaml can
    # list them as dependencies of the training stages whatever the data set.
    if val is None:
        val = (np.zeros((0, *arrays[TRAIN_IMAGES].shape[1:]), dtype=np.uint8), np.zeros(0, dtype=np.int64))
        has_val = False
    else:
        has_val = True
    arrays[VAL_IMAGES] = np.ascontiguousarray(val[0], dtype=np.uint8)
    arrays[VAL_LABELS] = np.ascontiguousarray(val[1], dtype=np.int64)
    for name, array in arrays.items():
        # np.save appends ".npy" to a name without it, so write through an open handle.
        write_atomic(dest / name, lambda tmp, a=array: _save_npy(tmp, a))
    meta = {
        "dataset": spec.name,
        "num_classes": spec.num_classes,
        "classes": list(spec.classes),
        "image_shape": list(arrays[TRAIN_IMAGES].shape[1:]),
        "pixel_scale": spec.pixel_scale,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "n_train": int(len(arrays[TRAIN_IMAGES])),
        "n_test": int(len(arrays[TEST_IMAGES])),
        "n_val": int(len(arrays[VAL_IMAGES])),
        "has_truth": has_truth,
        "has_val": has_val,
    }
    meta.update(extra_meta or {})
    write_json_atomic(dest / META, meta)
    return meta


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


# ---------------------------------------------------------------------------------------- CIFAR
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# The 20 CIFAR-100 superclasses ("coarse labels") and their 5 fine classes each, as listed on the
# data set's page (https://www.cs.toronto.edu/~kriz/cifar.html) and in the archive's `meta`
# (coarse_label_names / fine_label_names, both in alphabetical order: a fine class's label is its
# position in the sorted list of the 100 names). Within a superclass the fine classes are in
# alphabetical, hence label, order.
CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_CLASSES = tuple(sorted(name for fine in CIFAR100_SUPERCLASSES.values() for name in fine))


def cifar100_superclass_map() -> dict[int, int]:
    """CIFAR-100 asymmetric noise: each fine class -> the next fine class of its superclass.

    The last of the five wraps to the first (beaver -> dolphin -> otter -> seal -> whale -> beaver),
    the "next class within the same superclass" of later work (ELR, SOP: `build_for_cifar100`, a
    cyclic shift within each group of five). Departure, deliberately: those repositories form the
    groups from five *consecutive label indices* (apple, aquarium_fish, baby, bear, beaver are one
    "superclass" there), which are not the data set's superclasses; this map uses the real ones,
    as their papers describe it. Numbers are therefore not comparable to theirs one for one.
    """
    index = {name: i for i, name in enumerate(CIFAR100_CLASSES)}
    mapping = {}
    for fine in CIFAR100_SUPERCLASSES.values():
        labels = [index[name] for name in fine]
        for k, label in enumerate(labels):
            mapping[label] = labels[(k + 1) % len(labels)]
    return mapping


class DataSourceError(ValueError):
    """An archive or a list file is missing, corrupt or malformed (message: one line)."""


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # an integrity check against the published sum, not security
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(url: str, md5: str, raw_dir: Path, *, timeout: float = 60.0) -> Path:
    """The archive of `url` in `raw_dir`, verified against `md5`; downloaded only if absent.

    A file already there (downloaded before, or placed by the user to work offline) is verified
    and used without any network access; if its md5 differs it is refused, never overwritten
    (it may be the user's). A download goes to a temporary name beside the target and is renamed
    only once its md5 matches; a corrupt or partial download is removed.
    """
    name = PurePosixPath(urllib.parse.urlparse(url).path).name
    if not name:
        raise DataSourceError(f"data.url {url!r}: no file name at the end of the URL")
    raw_dir = Path(raw_dir)
    path = raw_dir / name
    if path.exists():
        actual = file_md5(path)
        if actual != md5:
            raise DataSourceError(
                f"{path}: md5 is {actual}, expected {md5} (corrupt, partial or another file); "
                f"not used: delete it (to download again) or replace it with the right archive"
            )
        return path
    raw_dir.mkdir(parents=True, exist_ok=True)
    print(f"[download] {url} -> {path}")
    with atomic_path(path) as tmp:  # removed unless the block completes
        actual = _download(url, tmp, timeout=timeout, hint=f"place {name} (md5 {md5}) in {raw_dir} to skip the download")
        if actual != md5:
            raise DataSourceError(
                f"{url}: the downloaded file's md5 is {actual}, expected {md5} (corrupt or partial); removed, not used"
            )
    return path


def _download(url: str, dest: Path, *, timeout: float, hint: str) -> str:
    """Stream `url` into `dest`; return the md5 of the bytes written."""
    digest = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "dividemix-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
                digest.update(block)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:  # HTTPError is a URLError
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", None) or exc
        raise DataSourceError(f"{url}: download failed ({reason}); {hint}") from None
    return digest.hexdigest()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of lists, strings and numpy arrays) and nothing else.

    The archive's md5 is checked first, but a mirror's archive is only as trustworthy as the md5
    the user gave; refusing every other global keeps a doctored pickle from running code.
    """

    _RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array reconstructor, however numpy names it
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # Python 2 / numpy 1 pickles (the archives)
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): __import__("codecs").encode,  # bytes in Python 3 protocol-2 pickles
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        # encoding='latin1': the batches are Python 2 pickles (as torchvision reads them).
        entry = _ArrayUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataSourceError(f"{where}: not a CIFAR python batch ({exc})") from None
    if not isinstance(entry, dict):
        raise DataSourceError(f"{where}: not a CIFAR python batch (a {type(entry).__name__}, not a dict)")
    return entry


@dataclass(frozen=True)
class CifarSpec(DatasetSpec):
    """CIFAR-10/100 from the official python archive (the layout torchvision reads)."""

    url: str = ""
    md5: str = ""
    folder: str = ""  # the archive's top folder
    train_members: tuple[str, ...] = ()
    test_member: str = ""
    meta_member: str = ""
    names_key: str = ""  # label names in the meta member
    labels_key: str = ""  # labels in each batch

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        raw_dir = Path(data.raw_dir) if data is not None else Path("data/raw")
        mirror = data is not None and data.url is not None
        url, md5 = (data.url, data.md5) if mirror else (self.url, self.md5)
        archive = fetch_archive(url, md5.lower(), raw_dir)
        members = _read_members(archive, [f"{self.folder}/{m}" for m in (*self.train_members, self.test_member, self.meta_member)])
        names = _unpickle(members[f"{self.folder}/{self.meta_member}"], f"{archive}:{self.meta_member}").get(self.names_key)
        if names is None or tuple(names) != self.classes:
            raise DataSourceError(f"{archive}: {self.meta_member} does not name the {self.num_classes} {self.name} classes in order")
        train = [self._batch(archive, members, m) for m in self.train_members]
        train_x = np.concatenate([x for x, _ in train])
        train_y = np.concatenate([y for _, y in train])
        test_x, test_y = self._batch(archive, members, self.test_member)
        return write_prepared(self, dest, train_x, train_y, test_x, test_y, extra_meta={"archive_md5": md5.lower()})

    def _batch(self, archive: Path, members: dict[str, bytes], member: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{archive}:{member}"
        entry = _unpickle(members[f"{self.folder}/{member}"], where)
        data, labels = entry.get("data"), entry.get(self.labels_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataSourceError(f"{where}: 'data' is not an (N, 3072) uint8 array")
        if labels is None or len(labels) != len(data):
            raise DataSourceError(f"{where}: '{self.labels_key}' missing or not one label per image")
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataSourceError(f"{where}: labels outside [0, {self.num_classes})")
        return data.reshape(-1, 3, 32, 32), labels


def _read_members(archive: Path, names: list[str]) -> dict[str, bytes]:
    """The bytes of `names` in a tar.gz, read in memory: nothing is extracted to disk."""
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in names and member.isfile():
                    out[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataSourceError(f"{archive}: not a readable tar.gz archive ({exc})") from None
    missing = [name for name in names if name not in out]
    if missing:
        raise DataSourceError(f"{archive}: member {missing[0]} missing (not the expected archive)")
    return out


# --------------------------------------------------------------------------------------- folder
CLASSES_FILE = "classes.txt"  # optional, in data.root: one class name per line, line i names label i


@dataclass(frozen=True)
class ImageList:
    """A parsed list file: image paths (relative to data.root), labels, and their line numbers."""

    source: Path
    paths: tuple[str, ...]
    labels: np.ndarray
    lines: tuple[int, ...]


def read_image_list(list_file: str | Path, root: Path) -> ImageList:
    """Parse "relative/path.jpg label" lines (blank lines and # comments skipped); check files exist."""
    list_file = Path(list_file)
    try:
        text = list_file.read_text()
    except FileNotFoundError:
        raise DataSourceError(f"{list_file}: list file not found") from None
    except UnicodeDecodeError:
        raise DataSourceError(f"{list_file}: not a text file") from None
    paths, labels, lines = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)  # the path may contain spaces; the label is the last field
        if len(parts) != 2 or re.fullmatch(r"-?[0-9]+", parts[1]) is None:
            raise DataSourceError(f"{list_file}:{number}: malformed line {line[:80]!r} (want 'relative/path.jpg label')")
        path, label = parts[0], int(parts[1])
        if label < 0:
            raise DataSourceError(f"{list_file}:{number}: label {label} is negative")
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            raise DataSourceError(f"{list_file}:{number}: image path {path!r} must be relative to data.root, without '..'")
        if not (root / path).is_file():
            raise DataSourceError(f"{list_file}:{number}: image {root / path} not found")
        paths.append(path)
        labels.append(label)
        lines.append(number)
    if not paths:
        raise DataSourceError(f"{list_file}: no images listed")
    return ImageList(list_file, tuple(paths), np.asarray(labels, dtype=np.int64), tuple(lines))


def load_images(listing: ImageList, root: Path, size: int) -> np.ndarray:
    """Decode every listed image as RGB, resize it to size x size (antialiased); (N, 3, size, size) uint8.

    Decoded with Pillow (torchvision.io's decoders are deprecated from torchvision 0.29), resized
    with torchvision's resize on the uint8 tensor. The aspect ratio is not kept (a plain resize,
    as Clothing1M's Resize((256, 256)) in the reference).
    """
    from PIL import Image
    from torchvision.transforms.v2 import functional as tvf

    out = np.empty((len(listing.paths), 3, size, size), dtype=np.uint8)
    for i, (path, line) in enumerate(zip(listing.paths, listing.lines)):
        try:
            with Image.open(root / path) as image:
                rgb = np.array(image.convert("RGB"))  # a writable copy for torch.from_numpy
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataSourceError(f"{listing.source}:{line}: cannot read image {root / path} ({exc})") from None
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)
        out[i] = tvf.resize(tensor, [size, size], antialias=True).numpy()
    return out


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, as fractions of 255 (computed in chunks, float64)."""
    total = np.zeros(images.shape[1])
    squares = np.zeros(images.shape[1])
    for start in range(0, len(images), 1024):
        chunk = images[start : start + 1024].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    # A floor of one grey level: a constant channel would otherwise divide by zero.
    std = np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 1 / 255)
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


@dataclass(frozen=True)
class FolderSpec(DatasetSpec):
    """Your own images in the layout of Clothing1M: data.root plus list files.

    The placeholder in DATASETS knows nothing of the classes or statistics; `resolve_spec` fills
    them in from the prepared folder's meta.json.
    """

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        if data is None or None in (data.root, data.train_list, data.test_list, data.image_size):
            raise DataSourceError("data.dataset 'folder' needs data.root, data.train_list, data.test_list and data.image_size")
        root, size = Path(data.root), data.image_size
        if not root.is_dir():
            raise DataSourceError(f"{root}: data.root is not a folder")
        lists = {"train": read_image_list(data.train_list, root), "test": read_image_list(data.test_list, root)}
        if data.val_list is not None:
            lists["val"] = read_image_list(data.val_list, root)
        classes = self._classes(root, lists)
        images = {split: load_images(listing, root, size) for split, listing in lists.items()}
        mean, std = channel_stats(images["train"])
        spec = dataclasses.replace(
            self, num_classes=len(classes), classes=classes, mean=mean, std=std, crop_padding=folder_crop_padding(size)
        )
        val = (images["val"], lists["val"].labels) if "val" in lists else None
        sources = {f"{split}_list_sha256": file_digest(listing.source) for split, listing in lists.items()}
        return write_prepared(
            spec, dest, images["train"], lists["train"].labels, images["test"], lists["test"].labels,
            val=val, has_truth=False, extra_meta={"crop_padding": spec.crop_padding, "image_size": size, **sources},
        )

    @staticmethod
    def _classes(root: Path, lists: dict[str, ImageList]) -> tuple[str, ...]:
        """Names from root/classes.txt when present, else "0".."K-1" for the largest label K-1 found."""
        names_file = root / CLASSES_FILE
        if names_file.is_file():
            names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
            if len(names) < 2:
                raise DataSourceError(f"{names_file}: at least two class names needed, one per line")
        else:
            names = tuple(str(k) for k in range(1 + max(int(listing.labels.max()) for listing in lists.values())))
        for listing in lists.values():
            bad = np.flatnonzero(listing.labels >= len(names))
            if len(bad):
                i = int(bad[0])
                raise DataSourceError(
                    f"{listing.source}:{listing.lines[i]}: label {listing.labels[i]} out of range [0, {len(names)})"
                    f" ({names_file} names {len(names)} classes)"
                )
        if len(names) < 2:
            raise DataSourceError(f"{lists['train'].source}: every label is 0; a classifier needs at least two classes")
        return names


def folder_crop_padding(image_size: int) -> int:
    """Random-translation range of folder images: 1/8 of the side (CIFAR's 4 pixels at 32)."""
    return max(1, image_size // 8)


DATASETS: dict[str, DatasetSpec] = {
    "digits": DigitsSpec(
        name="digits",
        num_classes=10,
        classes=tuple(str(d) for d in range(10)),
        pixel_scale=16.0,
        mean=(0.3053,),
        std=(0.3760,),
        crop_padding=1,
        hflip=False,
        asym_map={7: 1, 1: 7, 3: 8, 8: 3, 5: 6, 6: 5},
    ),
    "cifar10": CifarSpec(
        name="cifar10",
        num_classes=10,
        classes=CIFAR10_CLASSES,
        pixel_scale=255.0,
        mean=(0.4914, 0.4822, 0.4465),  # the reference's normalisation (dataloader_cifar.py)
        std=(0.2023, 0.1994, 0.2010),
        crop_padding=4,
        hflip=True,
        # The reference: truck->automobile, bird->airplane, deer->horse, cat<->dog.
        asym_map={9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",  # as torchvision.datasets.CIFAR10.tgz_md5
        folder="cifar-10-batches-py",
        train_members=tuple(f"data_batch_{k}" for k in range(1, 6)),
        test_member="test_batch",
        meta_member="batches.meta",
        names_key="label_names",
        labels_key="labels",
    ),
    "cifar100": CifarSpec(
        name="cifar100",
        num_classes=100,
        classes=CIFAR100_CLASSES,
        pixel_scale=255.0,
        mean=(0.507, 0.487, 0.441),
        std=(0.267, 0.256, 0.276),
        crop_padding=4,
        hflip=True,
        asym_map=cifar100_superclass_map(),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",  # as torchvision.datasets.CIFAR100.tgz_md5
        folder="cifar-100-python",
        train_members=("train",),
        test_member="test",
        meta_member="meta",
        names_key="fine_label_names",
        labels_key="fine_labels",
    ),
    "folder": FolderSpec(
        name="folder",
        num_classes=0,  # known once prepared: resolve_spec
        classes=(),
        pixel_scale=255.0,
        mean=(),
        std=(),
        crop_padding=0,
        hflip=True,
        asym_map=None,  # no truth to corrupt: noise.mode none or file
    ),
}


def read_meta(prepared: Path, *, dataset: str | None = None) -> dict:
    """The prepared folder's meta.json; with `dataset`, refuse a folder prepared for another one."""
    path = Path(prepared) / META
    if not path.exists():
        raise FileNotFoundError(f"{path}: prepared data set missing; run the download stage first")
    meta = json.loads(path.read_text())
    if dataset is not None and meta["dataset"] != dataset:
        raise ValueError(f"{prepared}: prepared data set is {meta['dataset']!r} but data.dataset is {dataset!r}")
    return meta


def resolve_spec(dataset: str, meta: dict) -> DatasetSpec:
    """The spec a prepared folder was made with (a folder data set takes its classes from meta).

    For a folder data set: num_classes, classes, mean, std and crop_padding come from meta.json
    (measured when it was prepared); every other data set's spec is fixed.
    """
    if meta.get("dataset") != dataset:
        raise ValueError(f"prepared data set is {meta.get('dataset')!r} but data.dataset is {dataset!r}")
    spec = DATASETS[dataset]
    if isinstance(spec, FolderSpec):
        return dataclasses.replace(
            spec,
            num_classes=int(meta["num_classes"]),
            classes=tuple(meta["classes"]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            crop_padding=int(meta["crop_padding"]),
        )
    return spec


def has_truth(prepared: Path) -> bool:
    """Whether the training truth is known (train_truth.npy exists): false for folder data sets.

    Evaluation and the report must skip every truth-based figure (division AUC, precision and
    recall, the actual noise rate, clean/noisy loss histograms) when this is false.
    """
    return bool(read_meta(prepared).get("has_truth", True))


def load_val_set(prepared: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The clean validation set (images, labels), when the data set has one (folder with a val list)."""
    prepared = Path(prepared)
    if not read_meta(prepared).get("has_val", False):
        return None
    return (
        np.load(prepared / VAL_IMAGES, allow_pickle=False),
        np.load(prepared / VAL_LABELS, allow_pickle=False),
    )


def load_train_images(prepared: Path) -> np.ndarray:
    return np.load(Path(prepared) / TRAIN_IMAGES, allow_pickle=False)


def load_test_set(prepared: Path) -> tuple[np.ndarray, np.ndarray]:
    prepared = Path(prepared)
    return (
        np.load(prepared / TEST_IMAGES, allow_pickle=False),
        np.load(prepared / TEST_LABELS, allow_pickle=False),
    )


def load_train_truth(prepared: Path) -> np.ndarray:
    """The true training labels. Only noise injection and evaluation may call this.

    A folder data set has none (see `has_truth`): asking for them is an error that says so.
    """
    path = Path(prepared) / TRAIN_TRUTH
    if not path.exists() and not has_truth(prepared):
        raise ValueError(f"{prepared}: the training truth of a {read_meta(prepared)['dataset']!r} data set is unknown")
    return np.load(path, allow_pickle=False)


def load_train_given_labels(prepared: Path) -> np.ndarray:
    """A folder data set's training labels as listed (already noisy). Only the noise stage reads them."""
    return np.load(Path(prepared) / TRAIN_GIVEN, allow_pickle=False)


class DeviceImages:
    """A whole image set kept on the device as uint8; batches are normalised (and augmented) there.

    Keeping uint8 on the device costs a quarter of float32 memory and removes per-step host
    transfers; augmentation is a batched gather, never per-image PIL. With `channels_last` every
    batch it returns is in the channels-last memory format (the same values; faster convolutions
    on tensor cores).
    """

    def __init__(self, images: np.ndarray, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False):
        self.images = torch.as_tensor(images, dtype=torch.uint8).to(device)
        self.spec = spec
        self.device = device
        self.channels_last = channels_last
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(spec.mean, device=device).view(shape) * spec.pixel_scale
        self._std = torch.tensor(spec.std, device=device).view(shape) * spec.pixel_scale

    def __len__(self) -> int:
        return self.images.shape[0]

    def normalise(self, batch_u8: torch.Tensor) -> torch.Tensor:
        batch = (batch_u8.float() - self._mean) / self._std
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def plain(self, index: torch.Tensor) -> torch.Tensor:
        """The test transform: normalisation only."""
        return self.normalise(self.images[index])

    def augmented(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training transform: random translation (zero padding + crop), optional flip."""
        batch = self.images[index]
        batch = random_translate(batch, self.spec.crop_padding, generator)
        if self.spec.hflip:
            batch = random_hflip(batch, generator)
        return self.normalise(batch)


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small CPU tensor (drawn from a CPU generator) to `device` without a host sync.

    A plain `.to("cuda")` from pageable memory waits for the copy (a synchronisation per step);
    from pinned memory with non_blocking=True it is queued on the stream like a kernel (PyTorch's
    pinned-memory cache keeps the buffer alive until the copy has run). On the CPU: the tensor itself.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def random_translate(batch: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomCrop(size, padding): shift each image by up to `padding` pixels, zero-filled.

    The same distribution as torchvision's RandomCrop(size, padding) on the uint8 image (fill 0,
    i.e. black, before normalisation; top and left offsets uniform in 0..2*padding). Offsets are
    drawn on the CPU generator (reproducible across devices) and applied as one gather on the
    batch's device.
    """
    if padding == 0:
        return batch
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (padding, padding, padding, padding))
    offsets = host_to_device(torch.randint(0, 2 * padding + 1, (2, n), generator=generator), batch.device)
    rows = torch.arange(h, device=batch.device)[None, :] + offsets[0][:, None]  # (n, h)
    cols = torch.arange(w, device=batch.device)[None, :] + offsets[1][:, None]  # (n, w)
    sample = torch.arange(n, device=batch.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[sample, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_hflip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomHorizontalFlip(p=0.5): each image mirrored left-right with probability 1/2."""
    flip = host_to_device(torch.rand(batch.shape[0], generator=generator) < 0.5, batch.device)
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)
