"""CIFAR-10 and CIFAR-100 from the official python archives, read the way torchvision reads them.

The archive is fetched into `data.raw_dir` behind its md5 (`datasets.download`), read in memory
(nothing extracted to disk) in torchvision's order (data_batch_1..5, then test_batch; CIFAR-100:
train, test, fine labels), and unpickled by an unpickler that accepts numpy arrays and plain
containers only.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dividemix.datasets.download import fetch_archive
from dividemix.datasets.prepared import write_prepared
from dividemix.datasets.spec import DatasetSpec, DataSourceError

if TYPE_CHECKING:
    from dividemix.config import DataConfig

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
        ("_codecs", "encode"): codecs.encode,  # bytes in Python 3 protocol-2 pickles
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


CIFAR10 = CifarSpec(
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
)

CIFAR100 = CifarSpec(
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
)
