"""CIFAR-10/100: download (from a local HTTP server, never the internet), md5 verification, the
archive cache in data.raw_dir, mirrors, and preparation in torchvision's order.

The archives are small fakes in the real layout (cifar-10-batches-py/data_batch_1..5, test_batch,
batches.meta; cifar-100-python/train, test, meta), pickled with protocol 2 as the originals.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import json
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import dvc_stage_args, run_stage_script, tiny_params, write_params
from dividemix.config import ConfigError, parse_config
from dividemix.datasets.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR100_SUPERCLASSES
from dividemix.datasets.download import fetch_archive
from dividemix.datasets.prepared import load_test_set, load_train_images, load_train_truth, read_meta
from dividemix.datasets.registry import SPECS, prepare_dataset
from dividemix.datasets.spec import DataSourceError

PER_BATCH, N_TEST = 10, 20


def _add(tar: tarfile.TarFile, name: str, obj) -> None:
    blob = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def make_cifar10_archive(path: Path, seed: int = 0) -> dict:
    """A small CIFAR-10 archive: 5 x 10 train images, 20 test; returns the arrays in torchvision's order."""
    rng = np.random.default_rng(seed)
    batches = [(rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8), rng.integers(0, 10, PER_BATCH).tolist()) for _ in range(5)]
    test = (rng.integers(0, 256, (N_TEST, 3072), dtype=np.uint8), rng.integers(0, 10, N_TEST).tolist())
    with tarfile.open(path, "w:gz") as tar:
        # Members not in train order inside the archive: the reader must order them by name, not position.
        for k in (3, 1, 5, 2, 4):
            x, y = batches[k - 1]
            _add(tar, f"cifar-10-batches-py/data_batch_{k}",
                 {"batch_label": f"training batch {k} of 5", "labels": y, "data": x, "filenames": [f"{i}.png" for i in range(len(y))]})
        _add(tar, "cifar-10-batches-py/test_batch", {"batch_label": "testing batch 1 of 1", "labels": test[1], "data": test[0]})
        _add(tar, "cifar-10-batches-py/batches.meta", {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072, "num_cases_per_batch": PER_BATCH})
    return {
        "train_x": np.concatenate([x for x, _ in batches]).reshape(-1, 3, 32, 32),
        "train_y": np.concatenate([y for _, y in batches]).astype(np.int64),
        "test_x": test[0].reshape(-1, 3, 32, 32),
        "test_y": np.asarray(test[1], dtype=np.int64),
    }


def make_cifar100_archive(path: Path, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    train = (rng.integers(0, 256, (50, 3072), dtype=np.uint8), rng.integers(0, 100, 50).tolist())
    test = (rng.integers(0, 256, (N_TEST, 3072), dtype=np.uint8), rng.integers(0, 100, N_TEST).tolist())
    with tarfile.open(path, "w:gz") as tar:
        for name, (x, y) in (("train", train), ("test", test)):
            _add(tar, f"cifar-100-python/{name}", {"data": x, "fine_labels": y, "coarse_labels": [0] * len(y), "batch_label": name})
        _add(tar, "cifar-100-python/meta", {"fine_label_names": list(CIFAR100_CLASSES), "coarse_label_names": list(CIFAR100_SUPERCLASSES)})
    return {
        "train_x": train[0].reshape(-1, 3, 32, 32),
        "train_y": np.asarray(train[1], dtype=np.int64),
        "test_x": test[0].reshape(-1, 3, 32, 32),
        "test_y": np.asarray(test[1], dtype=np.int64),
    }


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class Server:
    """http.server on 127.0.0.1 in a thread, serving a folder; counts the requests it answers."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    srv = Server(root)
    yield srv
    srv.stop()


@pytest.fixture
def cifar10(server, monkeypatch):
    """The fake archive served at the official file name; the cifar10 spec's URL and md5 point at it."""
    arrays = make_cifar10_archive(server.root / "cifar-10-python.tar.gz")
    spec = dataclasses.replace(
        SPECS["cifar10"], url=f"{server.url}/cifar-10-python.tar.gz", md5=md5(server.root / "cifar-10-python.tar.gz")
    )
    monkeypatch.setitem(SPECS, "cifar10", spec)
    return arrays, spec


def data_config(**data_keys):
    return parse_config(tiny_params(**{f"data.{k}": v for k, v in data_keys.items()})).data


def assert_prepared(folder: Path, arrays: dict, dataset: str, num_classes: int) -> dict:
    np.testing.assert_array_equal(load_train_images(folder), arrays["train_x"])
    np.testing.assert_array_equal(load_train_truth(folder), arrays["train_y"])
    test_x, test_y = load_test_set(folder)
    np.testing.assert_array_equal(test_x, arrays["test_x"])
    np.testing.assert_array_equal(test_y, arrays["test_y"])
    assert load_train_images(folder).dtype == np.uint8 and load_train_truth(folder).dtype == np.int64
    meta = read_meta(folder, dataset=dataset)
    assert meta["num_classes"] == num_classes and meta["image_shape"] == [3, 32, 32]
    assert meta["has_truth"] is True and meta["has_val"] is False
    assert (meta["n_train"], meta["n_test"]) == (len(arrays["train_y"]), len(arrays["test_y"]))
    return meta


# -------------------------------------------------------------------------------------- specs
def test_cifar_specs_match_the_reference_and_torchvision():
    from torchvision.datasets import CIFAR10, CIFAR100

    c10, c100 = SPECS["cifar10"], SPECS["cifar100"]
    assert (c10.url, c10.md5) == (CIFAR10.url, CIFAR10.tgz_md5)
    assert (c100.url, c100.md5) == (CIFAR100.url, CIFAR100.tgz_md5)
    assert c10.md5 == "c58f30108f718f92721af3b95e74349a" and c100.md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert c10.train_members == tuple(name for name, _ in CIFAR10.train_list)
    assert c100.train_members == tuple(name for name, _ in CIFAR100.train_list)
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2023, 0.1994, 0.2010)
    assert c100.mean == (0.507, 0.487, 0.441) and c100.std == (0.267, 0.256, 0.276)
    for spec in (c10, c100):
        assert (spec.crop_padding, spec.hflip, spec.pixel_scale) == (4, True, 255.0)
    assert len(c10.classes) == 10 and len(c100.classes) == 100 == len(set(c100.classes))
    assert c10.asym_map == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


# ------------------------------------------------------------------------------- download path
def test_download_verifies_and_prepares_in_torchvision_order(cifar10, server, tmp_path):
    arrays, spec = cifar10
    raw = tmp_path / "raw"
    meta = prepare_dataset(data_config(dataset="cifar10", raw_dir=str(raw)), tmp_path / "prepared")
    assert server.requests == ["/cifar-10-python.tar.gz"]
    assert md5(raw / "cifar-10-python.tar.gz") == spec.md5
    assert sorted(p.name for p in raw.iterdir()) == ["cifar-10-python.tar.gz"]  # no temporary file left
    assert_prepared(tmp_path / "prepared", arrays, "cifar10", 10)
    assert meta["classes"] == list(CIFAR10_CLASSES) and meta["archive_md5"] == spec.md5
    assert meta["mean"] == list(spec.mean)

    # A second preparation uses the cached archive: no request.
    prepare_dataset(data_config(dataset="cifar10", raw_dir=str(raw)), tmp_path / "again")
    assert len(server.requests) == 1


def test_placed_archive_is_verified_and_used_offline(cifar10, server, tmp_path):
    arrays, _ = cifar10
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "cifar-10-python.tar.gz").write_bytes((server.root / "cifar-10-python.tar.gz").read_bytes())
    server.stop()  # any network access would now fail
    prepare_dataset(data_config(dataset="cifar10", raw_dir=str(raw)), tmp_path / "prepared")
    assert server.requests == []
    assert_prepared(tmp_path / "prepared", arrays, "cifar10", 10)


def test_placed_corrupt_archive_is_refused_and_kept(cifar10, server, tmp_path):
    _, spec = cifar10
    raw = tmp_path / "raw"
    raw.mkdir()
    good = (server.root / "cifar-10-python.tar.gz").read_bytes()
    (raw / "cifar-10-python.tar.gz").write_bytes(good[: len(good) // 2])  # a partial copy
    with pytest.raises(DataSourceError) as info:
        prepare_dataset(data_config(dataset="cifar10", raw_dir=str(raw)), tmp_path / "prepared")
    message = str(info.value)
    assert "\n" not in message
    assert str(raw / "cifar-10-python.tar.gz") in message and spec.md5 in message
    assert md5(raw / "cifar-10-python.tar.gz") in message and "delete" in message
    assert server.requests == []  # never replaced behind the user's back
    assert (raw / "cifar-10-python.tar.gz").read_bytes() == good[: len(good) // 2]
    assert not (tmp_path / "prepared" / "meta.json").exists()


def test_corrupt_download_is_removed_and_refused(cifar10, server, tmp_path):
    _, spec = cifar10
    path = server.root / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:-100])  # the server sends a truncated file
    raw = tmp_path / "raw"
    with pytest.raises(DataSourceError) as info:
        prepare_dataset(data_config(dataset="cifar10", raw_dir=str(raw)), tmp_path / "prepared")
    message = str(info.value)
    assert "\n" not in message and spec.md5 in message and md5(path) in message and "removed" in message
    assert list(raw.iterdir()) == []  # neither the archive nor a temporary file


def test_unreachable_url_is_one_line_saying_how_to_work_offline(cifar10, server, tmp_path):
    server.stop()
    with pytest.raises(DataSourceError) as info:
        prepare_dataset(data_config(dataset="cifar10", raw_dir=str(tmp_path / "raw")), tmp_path / "prepared")
    message = str(info.value)
    assert "\n" not in message and "download failed" in message and "cifar-10-python.tar.gz" in message
    assert list((tmp_path / "raw").iterdir()) == []


def test_missing_file_on_the_server_is_an_error(server, tmp_path):
    url = f"{server.url}/nothing-here.tar.gz"
    with pytest.raises(DataSourceError, match="404"):
        fetch_archive(url, "0" * 32, tmp_path / "raw")


def test_mirror_url_and_md5(server, tmp_path):
    (server.root / "mirror").mkdir()
    arrays = make_cifar10_archive(server.root / "mirror" / "c10.tar.gz", seed=5)
    config = data_config(dataset="cifar10", raw_dir=str(tmp_path / "raw"), url=f"{server.url}/mirror/c10.tar.gz",
                         md5=md5(server.root / "mirror" / "c10.tar.gz").upper())
    assert config.md5 == md5(server.root / "mirror" / "c10.tar.gz")  # normalised to lower case
    prepare_dataset(config, tmp_path / "prepared")
    assert server.requests == ["/mirror/c10.tar.gz"]
    assert (tmp_path / "raw" / "c10.tar.gz").exists()  # cached under the mirror's file name
    assert_prepared(tmp_path / "prepared", arrays, "cifar10", 10)


def test_mirror_with_the_wrong_md5_is_refused(server, tmp_path):
    make_cifar10_archive(server.root / "c10.tar.gz")
    config = data_config(dataset="cifar10", raw_dir=str(tmp_path / "raw"), url=f"{server.url}/c10.tar.gz", md5="0" * 32)
    with pytest.raises(DataSourceError, match="expected 0{32}"):
        prepare_dataset(config, tmp_path / "prepared")
    assert list((tmp_path / "raw").iterdir()) == []


def test_cifar100_fine_labels_and_names(server, tmp_path):
    arrays = make_cifar100_archive(server.root / "cifar-100-python.tar.gz")
    config = data_config(dataset="cifar100", raw_dir=str(tmp_path / "raw"), url=f"{server.url}/cifar-100-python.tar.gz",
                         md5=md5(server.root / "cifar-100-python.tar.gz"))
    meta = prepare_dataset(config, tmp_path / "prepared")
    assert_prepared(tmp_path / "prepared", arrays, "cifar100", 100)
    assert meta["classes"] == list(CIFAR100_CLASSES) and meta["classes"][:3] == ["apple", "aquarium_fish", "baby"]


# --------------------------------------------------------------------------- archive contents
def test_an_archive_of_the_other_data_set_is_refused(server, tmp_path):
    make_cifar100_archive(server.root / "c100.tar.gz")
    config = data_config(dataset="cifar10", raw_dir=str(tmp_path / "raw"), url=f"{server.url}/c100.tar.gz",
                         md5=md5(server.root / "c100.tar.gz"))
    with pytest.raises(DataSourceError, match="cifar-10-batches-py/data_batch_1 missing"):
        prepare_dataset(config, tmp_path / "prepared")


class _Evil:
    def __reduce__(self):
        return (print, ("pickle ran code",))


def test_a_pickle_that_would_run_code_is_refused(server, tmp_path, capsys):
    path = server.root / "evil.tar.gz"
    make_cifar10_archive(path)
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": _Evil()}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    config = data_config(dataset="cifar10", raw_dir=str(tmp_path / "raw"), url=f"{server.url}/evil.tar.gz", md5=md5(path))
    with pytest.raises(DataSourceError, match=r"\.print is not allowed"):
        prepare_dataset(config, tmp_path / "prepared")
    assert "pickle ran code" not in capsys.readouterr().out


# -------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("keys", "named", "fragment"),
    [
        ({"data.dataset": "cifar10", "data.url": "http://x/a.tar.gz"}, "data.md5", "go together"),
        ({"data.dataset": "cifar10", "data.md5": "0" * 32}, "data.url", "go together"),
        ({"data.dataset": "cifar10", "data.url": "ftp://x/a.tar.gz", "data.md5": "0" * 32}, "data.url", "https://"),
        ({"data.dataset": "cifar10", "data.url": "http://x/a.tar.gz", "data.md5": "xyz"}, "data.md5", "32 hexadecimal"),
        ({"data.url": "http://x/a.tar.gz", "data.md5": "0" * 32}, "data.url", "downloads nothing"),
        ({"data.dataset": "cifar10", "data.root": "images"}, "data.root", "only read when data.dataset is 'folder'"),
    ],
)
def test_bad_download_keys_are_one_line_config_errors(keys, named, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(tiny_params(**keys))
    message = str(info.value)
    assert "\n" not in message and named in message and fragment in message, message


def test_cifar100_asym_is_allowed_by_the_config():
    assert parse_config(tiny_params(**{"data.dataset": "cifar100", "noise.mode": "asym"})).noise.mode == "asym"


# ---------------------------------------------------------------------------------- the stage
def test_stage_with_a_corrupt_archive_exits_2_and_writes_nothing(tmp_path):
    """The user placed a corrupt archive: one line, exit 2, no prepared folder, archive untouched."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "cifar-10-python.tar.gz").write_bytes(b"not an archive")
    write_params(tmp_path / "params.yaml", tiny_params(**{"data.dataset": "cifar10"}))
    run_stage_script("check", dvc_stage_args("check"), cwd=tmp_path)  # the sources' manifest download reads
    result = run_stage_script("download", dvc_stage_args("download"), cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: download: ")
    assert "cifar-10-python.tar.gz" in lines[0] and SPECS["cifar10"].md5 in lines[0] and "delete" in lines[0]
    assert not (tmp_path / "data" / "prepared").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw", "sources.json", "truth_list.json"]  # no temporary folder left
    assert (raw / "cifar-10-python.tar.gz").read_bytes() == b"not an archive"


def test_stage_prepares_from_a_mirror(server, tmp_path):
    arrays = make_cifar10_archive(server.root / "c10.tar.gz")
    params = tiny_params(**{"data.dataset": "cifar10", "data.url": f"{server.url}/c10.tar.gz",
                            "data.md5": md5(server.root / "c10.tar.gz")})
    write_params(tmp_path / "params.yaml", params)
    run_stage_script("check", dvc_stage_args("check"), cwd=tmp_path)  # the sources' manifest download reads
    result = run_stage_script("download", dvc_stage_args("download"), cwd=tmp_path)
    assert "50 train / 20 test" in result.stdout
    assert_prepared(tmp_path / "data" / "prepared", arrays, "cifar10", 10)
    assert json.loads((tmp_path / "data" / "prepared" / "meta.json").read_text())["dataset"] == "cifar10"
