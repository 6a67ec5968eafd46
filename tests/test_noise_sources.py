"""Noise beyond the digits default: the CIFAR asymmetric maps, and label files (CIFAR-N .pt,
Parquet, CSV) with their validation and the noise stage's summary."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from conftest import dvc_stage_args, run_stage_script, tiny_params, write_params
from dividemix.config import ConfigError, parse_config
from dividemix.datasets.cifar import CIFAR100_CLASSES, CIFAR100_SUPERCLASSES
from dividemix.datasets.prepared import write_prepared
from dividemix.datasets.registry import SPECS
from dividemix.noise.inject import inject_noise, noisy_label_file
from dividemix.noise.label_files import LabelFileError, read_label_file

# Fine label -> superclass index, written out independently of our table: the widely used
# `sparse2coarse` array (github.com/ryanchankh/cifar100coarse), i.e. the archive's coarse_labels.
SPARSE2COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


# ------------------------------------------------------------------------------ asymmetric maps
def test_cifar10_asym_map_is_the_reference_one():
    labels = np.repeat(np.arange(10), 20)
    noisy = inject_noise(labels, mode="asym", rate=1.0, seed=0, num_classes=10, asym_map=SPECS["cifar10"].asym_map)
    #                       airplane auto bird cat deer dog frog horse ship truck
    expected = np.array([0, 1, 0, 5, 7, 3, 6, 7, 8, 1])
    np.testing.assert_array_equal(noisy, expected[labels])


def test_cifar100_superclass_table_matches_the_archives_coarse_labels():
    index = {name: i for i, name in enumerate(CIFAR100_CLASSES)}
    assert len(CIFAR100_SUPERCLASSES) == 20 and all(len(v) == 5 for v in CIFAR100_SUPERCLASSES.values())
    assert sorted(index[n] for fine in CIFAR100_SUPERCLASSES.values() for n in fine) == list(range(100))
    coarse = [None] * 100
    for k, fine in enumerate(CIFAR100_SUPERCLASSES.values()):
        for name in fine:
            coarse[index[name]] = k
    assert coarse == SPARSE2COARSE


def test_cifar100_asym_is_next_class_within_the_superclass():
    mapping = SPECS["cifar100"].asym_map
    index = {name: i for i, name in enumerate(CIFAR100_CLASSES)}
    # By hand, from the data set's page: aquatic mammals beaver, dolphin, otter, seal, whale.
    assert [CIFAR100_CLASSES[mapping[index[n]]] for n in ("beaver", "dolphin", "otter", "seal", "whale")] == [
        "dolphin", "otter", "seal", "whale", "beaver"]
    assert CIFAR100_CLASSES[mapping[index["tractor"]]] == "lawn_mower"  # vehicles 2 wraps round
    coarse = np.array(SPARSE2COARSE)
    source = np.arange(100)
    target = np.array([mapping[c] for c in source])
    assert (target != source).all()  # every class moves
    np.testing.assert_array_equal(coarse[target], coarse[source])  # never out of its superclass
    assert sorted(target) == list(range(100))  # a permutation: each class is some class's image once
    for c in source:  # five steps come back: a 5-cycle per superclass
        k = c
        for _ in range(5):
            k = mapping[k]
        assert k == c


def test_cifar100_asym_noise_changes_exactly_the_picked_samples():
    labels = np.random.default_rng(0).integers(0, 100, size=5000)
    noisy = inject_noise(labels, mode="asym", rate=0.4, seed=2, num_classes=100, asym_map=SPECS["cifar100"].asym_map)
    assert (noisy != labels).sum() == 2000
    coarse = np.array(SPARSE2COARSE)
    np.testing.assert_array_equal(coarse[noisy], coarse[labels])


# -------------------------------------------------------------------------------- label files
N, CLASSES = 100, 10


@pytest.fixture
def truth():
    return np.random.default_rng(0).integers(0, CLASSES, size=N)


def save_cifar_n(path: Path, content: dict, *, numpy1_names: bool = False) -> Path:
    """A CIFAR-N style .pt (torch.save of a dict of numpy arrays). numpy1_names: rewrite the pickle's
    globals to numpy 1's `numpy.core...`, as in the published files."""
    torch.save(content, path)
    if numpy1_names:
        with zipfile.ZipFile(path) as zin:
            members = [(info, zin.read(info.filename)) for info in zin.infolist()]
        with zipfile.ZipFile(path, "w") as zout:
            for info, blob in members:
                if info.filename.endswith("data.pkl"):
                    assert b"numpy._core.multiarray" in blob
                    blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                zout.writestr(info, blob)
    return path


@pytest.mark.parametrize("numpy1_names", [False, True])
def test_cifar_n_pt_file_loads_with_weights_only(tmp_path, truth, numpy1_names):
    worse = (truth + 1) % CLASSES
    path = save_cifar_n(tmp_path / "c.pt", {"clean_label": truth, "worse_label": worse, "aggre_label": truth}, numpy1_names=numpy1_names)
    labels, clean = read_label_file(path, key="worse_label", n_train=N, num_classes=CLASSES)
    np.testing.assert_array_equal(labels, worse)
    np.testing.assert_array_equal(clean, truth)
    assert labels.dtype == np.int64


def test_pt_file_with_arbitrary_objects_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"worse_label": Payload()}, path)
    with pytest.raises(LabelFileError) as info:
        read_label_file(path, key="worse_label", n_train=N, num_classes=CLASSES)
    assert "\n" not in str(info.value) and "evil.pt" in str(info.value)


def test_unknown_key_lists_the_allowed_ones(tmp_path, truth):
    path = save_cifar_n(tmp_path / "c.pt", {"clean_label": truth, "worse_label": truth, "aggre_label": truth})
    with pytest.raises(LabelFileError) as info:
        read_label_file(path, key="worst_label", n_train=N, num_classes=CLASSES)
    message = str(info.value)
    assert "\n" not in message and "'worst_label'" in message
    assert "allowed: aggre_label, clean_label, worse_label" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"worse_label": np.zeros(N - 1, dtype=np.int64)}, "99 labels for 100 training samples"),
        ({"worse_label": np.full(N, CLASSES, dtype=np.int64)}, "label 10 at position 0 outside [0, 10)"),
        ({"worse_label": np.zeros(N, dtype=np.float32)}, "not a 1-D array of integer labels"),
    ],
)
def test_bad_pt_files_are_one_line_errors(tmp_path, content, fragment):
    path = save_cifar_n(tmp_path / "c.pt", content)
    with pytest.raises(LabelFileError) as info:
        read_label_file(path, key="worse_label", n_train=N, num_classes=CLASSES)
    assert "\n" not in str(info.value) and fragment in str(info.value) and "c.pt" in str(info.value)


def test_csv_and_parquet_in_any_row_order(tmp_path, truth):
    order = np.random.default_rng(1).permutation(N)
    frame = pd.DataFrame({"sample_index": order, "label": truth[order]})
    frame.to_csv(tmp_path / "l.csv", index=False)
    frame.to_parquet(tmp_path / "l.parquet")
    for name in ("l.csv", "l.parquet"):
        labels, clean = read_label_file(tmp_path / name, key=None, n_train=N, num_classes=CLASSES)
        np.testing.assert_array_equal(labels, truth)
        assert clean is None


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ("sample_index,label\n0,1\n1,2\n", "sample_index 2 missing (2 rows for 3 training samples)"),
        ("sample_index,label\n0,1\n1,2\n1,3\n", "sample_index 1 appears twice (again at line 4)"),
        ("sample_index,label\n0,1\n1,2\n5,3\n", "sample_index 5 at line 4 outside [0, 3)"),
        ("sample_index,label\n0,1\n1,12\n2,3\n", "label 12 at line 3 outside [0, 10)"),
        ("sample_index,label\n0,1\n1,\n2,3\n", "label at line 3 is missing"),
        ("sample_index,label\n0,1\n1,2.5\n2,3\n", "label at line 3 is 2.5, not an integer"),
        ("index,label\n0,1\n1,2\n2,3\n", "column sample_index missing"),
    ],
)
def test_bad_csv_files_are_one_line_errors_with_the_line(tmp_path, rows, fragment):
    path = tmp_path / "l.csv"
    path.write_text(rows)
    with pytest.raises(LabelFileError) as info:
        read_label_file(path, key=None, n_train=3, num_classes=CLASSES)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message, message


def test_missing_label_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels/README.md"):
        read_label_file(tmp_path / "nope.csv", key=None, n_train=3, num_classes=CLASSES)


# ------------------------------------------------------------------------------- noise stage
@pytest.fixture
def cifar_prepared(tmp_path, truth):
    images = np.zeros((N, 3, 32, 32), dtype=np.uint8)
    write_prepared(SPECS["cifar10"], tmp_path / "prepared", images, truth, images[:5], truth[:5])
    return tmp_path / "prepared"


def test_file_mode_reports_the_actual_wrong_label_rate(tmp_path, cifar_prepared, truth):
    worse = truth.copy()
    worse[:30] = (truth[:30] + 3) % CLASSES
    path = save_cifar_n(tmp_path / "CIFAR-10_human.pt", {"clean_label": truth, "worse_label": worse})
    summary = noisy_label_file(dataset="cifar10", prepared=cifar_prepared, out=tmp_path / "n.parquet",
                               mode="file", rate=0.5, seed=1, file=path, key="worse_label")
    assert (summary["n_wrong"], summary["noise_rate_actual"]) == (30, 0.3)
    assert summary["file"] == str(path) and summary["key"] == "worse_label"
    table = pq.read_table(tmp_path / "n.parquet")
    np.testing.assert_array_equal(table.column("noisy_label").to_numpy(), worse)
    meta = json.loads(table.schema.metadata[b"dividemix.meta"])
    assert meta["file"] == str(path) and len(meta["file_sha256"]) == 64


def test_a_cifar_n_file_of_another_data_set_is_refused(tmp_path, cifar_prepared, truth):
    other = (truth + 1) % CLASSES
    path = save_cifar_n(tmp_path / "c.pt", {"clean_label": other, "noisy_label": other})
    with pytest.raises(LabelFileError, match=f"clean_label differs .* at {N} of {N} samples"):
        noisy_label_file(dataset="cifar10", prepared=cifar_prepared, out=tmp_path / "n.parquet",
                         mode="file", rate=0.5, seed=1, file=path, key="noisy_label")
    assert not (tmp_path / "n.parquet").exists()


@pytest.mark.parametrize(
    ("keys", "named", "fragment"),
    [
        ({"noise.mode": "file"}, "noise.file", "required when noise.mode is 'file'"),
        ({"noise.mode": "file", "noise.file": "/tmp/x.csv"}, "noise.file", "under labels/"),
        ({"noise.mode": "file", "noise.file": "labels/../x.csv"}, "noise.file", "under labels/"),
        ({"noise.mode": "file", "noise.file": "data/x.csv"}, "noise.file", "under labels/"),
        ({"noise.mode": "file", "noise.file": "labels/x.json"}, "noise.file", ".pt, .parquet, .csv"),
        ({"noise.mode": "file", "noise.file": "labels/x.pt"}, "noise.key", "required for a .pt"),
        ({"noise.mode": "file", "noise.file": "labels/x.csv", "noise.key": "worse_label"}, "noise.key", "only read for a .pt"),
        ({"noise.mode": "sym", "noise.file": "labels/x.csv"}, "noise.file", "only read when noise.mode is 'file'"),
        ({"noise.mode": "sym", "noise.key": "worse_label"}, "noise.key", "only read when noise.mode is 'file'"),
    ],
)
def test_bad_noise_file_keys_are_one_line_config_errors(keys, named, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(tiny_params(**keys))
    message = str(info.value)
    assert "\n" not in message and named in message and fragment in message, message


def test_noise_stage_reads_a_label_file_under_labels(tmp_path, truth):
    """The stage as DVC runs it: noise.file relative to the repository (the working directory)."""
    images = np.zeros((N, 1, 8, 8), dtype=np.uint8)
    write_prepared(SPECS["digits"], tmp_path / "data" / "prepared", images, truth, images[:5], truth[:5])
    (tmp_path / "labels").mkdir()
    noisy = (truth + (np.arange(N) % 4 == 0)) % CLASSES  # every 4th label wrong
    pd.DataFrame({"sample_index": np.arange(N), "label": noisy}).to_csv(tmp_path / "labels" / "mine.csv", index=False)
    write_params(tmp_path / "params.yaml", tiny_params(**{"noise.mode": "file", "noise.file": "labels/mine.csv"}))
    args = dvc_stage_args("noise")
    result = run_stage_script("noise", args, cwd=tmp_path)
    assert "25 of 100 labels wrong" in result.stdout
    summary = json.loads((tmp_path / "metrics" / "noise.json").read_text())
    assert summary["noise_rate_actual"] == 0.25 and summary["file"] == "labels/mine.csv" and summary["key"] is None
    np.testing.assert_array_equal(pq.read_table(tmp_path / "data/noisy/labels.parquet").column("noisy_label").to_numpy(), noisy)

    # A bad file: exit 2, one line naming file and line, the previous outputs untouched.
    (tmp_path / "labels" / "mine.csv").write_text("sample_index,label\n0,1\n0,2\n")
    before = (tmp_path / "metrics" / "noise.json").read_bytes()
    result = run_stage_script("noise", args, cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "labels/mine.csv" in lines[0] and "appears twice (again at line 3)" in lines[0]
    assert (tmp_path / "metrics" / "noise.json").read_bytes() == before
