"""Trust, as a user meets it: a refused input touches no output, whichever key is at fault and
however the pipeline is started; an interrupt says one line; a stopped run resumes, even after a
refused `dvc exp run` (which checks out the committed outputs first).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_PARAMS, checksums, dvc, dvc_env, make_repo, tiny_params, write_params

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier


def run(root: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=root, env=dvc_env(root), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def committed(tiny_run: Path, tmp_path_factory) -> Path:
    """A repository whose last commit holds a finished tiny run (the tiny run's outputs, committed
    to DVC as the stages would write them, then evaluate and report run by `dvc repro`)."""
    root = make_repo(tmp_path_factory.mktemp("trust") / "project", TINY_PARAMS)
    for part in ("data", "checkpoints", "artifacts", "metrics", "live"):
        shutil.copytree(tiny_run / part, root / part)
    dvc(root, "commit", "-f", "download", "noise", "warmup", "baseline", "train")
    dvc(root, "repro")
    assert set(json.loads(dvc(root, "status", "--json").stdout)) == {"check"}  # always changed: nothing else
    run(root, "git", "add", "-A")
    assert run(root, "git", "commit", "-qm", "a finished tiny run").returncode == 0
    return root


def restore(root: Path) -> None:
    """Back to the committed run: parameters, outputs, no kept progress."""
    run(root, "git", "checkout", "-q", "params.yaml")
    dvc(root, "checkout", "--force")
    shutil.rmtree(root / ".dividemix", ignore_errors=True)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


# The refused parameters of the issue: each is refused before any stage writes.
REFUSED = {
    "warmup-equals-epochs": ({"train.warmup_epochs": 4}, "train.warmup_epochs"),  # = train.epochs
    "batch-size-0": ({"train.batch_size": 0}, "train.batch_size"),
    "lr-negative": ({"train.lr": -1.0}, "train.lr"),
    "arch-resnet9000": ({"model.arch": "resnet9000"}, "model.arch"),
    "device-cuda": ({"train.device": "cuda"}, "train.device"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_parameter_leaves_every_output_byte_identical(committed: Path, case: str):
    if case == "device-cuda" and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    overrides, key = REFUSED[case]
    before = checksums(committed)
    write_params(committed / "params.yaml", tiny_params(**overrides))
    try:
        result = run(committed, "dvc", "repro")
        assert result.returncode != 0
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error: check: ") and key in lines[0], result.stderr
        assert "Traceback" not in result.stderr
        assert checksums(committed) == before
    finally:
        restore(committed)


@pytest.mark.parametrize(("stage", "overrides", "key"), [
    ("train", {"train.lr": -1.0}, "train.lr"),
    ("warmup", {"train.batch_size": 0}, "train.batch_size"),
    ("report", {"train.warmup_epochs": 4}, "train.warmup_epochs"),
])
def test_a_stage_run_alone_refuses_without_touching_its_outputs(committed: Path, stage, overrides, key):
    """`dvc repro -s STAGE` skips the check stage: the stage refuses by itself, and DVC has not
    deleted its outputs first (they persist)."""
    before = checksums(committed)
    write_params(committed / "params.yaml", tiny_params(**overrides))
    try:
        result = run(committed, "dvc", "repro", "-s", stage)
        assert result.returncode != 0
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith(f"error: {stage}: ") and key in lines[0], result.stderr
        assert checksums(committed) == before
    finally:
        restore(committed)


def test_a_corrupt_input_file_is_refused_by_its_stage_without_touching_any_output(committed: Path):
    """A label file that exists (so `check` passes) but is not a label file: the noise stage
    refuses it after DVC started it, and DVC had not deleted the noise stage's outputs."""
    before = checksums(committed)
    (committed / "labels/broken.csv").write_text("sample_index,label\n0,1\nnot a row\n")
    write_params(committed / "params.yaml", tiny_params(**{"noise.mode": "file", "noise.file": "labels/broken.csv"}))
    try:
        result = run(committed, "dvc", "repro")
        assert result.returncode != 0
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error: noise: ") and "labels/broken.csv" in lines[0], result.stderr
        assert checksums(committed) == before
    finally:
        (committed / "labels/broken.csv").unlink()
        restore(committed)


def test_a_refused_experiment_leaves_every_output_byte_identical(committed: Path):
    before = checksums(committed)
    try:
        result = run(committed, "dvc", "exp", "run", "-S", "+train.lamda_u=10")
        assert result.returncode != 0
        lines = error_lines(result)
        assert len(lines) == 1 and "train.lamda_u: unknown key" in lines[0], result.stderr
        assert checksums(committed) == before
    finally:
        restore(committed)


# ------------------------------------------------------------------------------ interrupts
def checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return -1


def live_step(root: Path) -> int:
    """The last epoch DVCLive has logged for train (-1: none yet, or mid-write)."""
    try:
        return int(json.loads((root / "live/train/metrics.json").read_text())["step"])
    except (FileNotFoundError, ValueError, KeyError):
        return -1


def start_and_stop(root: Path, command: list[str], after_epoch: int, sig: int, *, group: bool) -> tuple[str, list[int]]:
    """Start `command`, send `sig` once train has committed and logged `after_epoch` (the kept
    checkpoint, then DVCLive), to its whole process group (a Ctrl-C in a terminal) or to it alone:
    (its output, its children's pids then)."""
    process = subprocess.Popen(command, cwd=root, env=dvc_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    kept = root / ".dividemix/resume/train/state.pt"
    deadline = time.monotonic() + 300
    # The run is stepped, not raced: its whole group is stopped (SIGSTOP) while its state is read,
    # then let run for a slice. A slice is far shorter than an epoch, so however loaded the
    # machine (a slow look, a fast epoch), the run cannot pass `after_epoch + 1` between two looks.
    while True:
        freeze(process, signal.SIGSTOP)
        if checkpoint_epoch(kept) >= after_epoch and live_step(root) >= after_epoch:
            break
        assert process.poll() is None, f"train ended (exit {process.returncode}) before it could be stopped"
        assert time.monotonic() < deadline, f"train never committed epoch {after_epoch}"
        freeze(process, signal.SIGCONT)
        time.sleep(0.02)
    children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
    os.killpg(process.pid, sig) if group else process.send_signal(sig)
    freeze(process, signal.SIGCONT)  # the signal is delivered as the group runs again
    output, _ = process.communicate(timeout=120)
    return output, children


def freeze(process: subprocess.Popen, sig: int) -> None:
    """SIGSTOP or SIGCONT to `process`'s group; one that has ended fails the test in one line."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        raise AssertionError(f"train ended (exit {process.poll()}) before it could be stopped") from None


def wait_gone(pids: list[int], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} still running"
        time.sleep(0.05)


def reference_run(tiny_run: Path, dest: Path, params: dict) -> Path:
    """The same training, uninterrupted and in-process, from the tiny run's warm-up."""
    from conftest import run_paths, stage_params
    from dividemix.config import parse_config, select
    from dividemix.training.train import run_train

    for part in ("data", "checkpoints/warmup"):
        shutil.copytree(tiny_run / part, dest / part)
    config = parse_config(params)
    run_train(config, run_paths(dest), select(config, stage_params("train")))
    return dest


def live_steps(root: Path, name: str = "test_acc/ensemble") -> list[int]:
    """The epochs DVCLive's history of `name` holds (live/train), in file order."""
    lines = (root / f"live/train/plots/metrics/{name}.tsv").read_text().splitlines()
    return [int(line.split("\t")[0]) for line in lines[1:]]


def workspace_live_step(root: Path) -> int:
    """The epoch `dvc exp show` shows for the workspace (live/train/metrics.json)."""
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    return shown[0]["data"]["metrics"]["live/train/metrics.json"]["data"]["step"]


def test_a_stopped_run_says_where_it_stood_and_resumes_to_the_same_results(committed: Path, tiny_run: Path, tmp_path):
    """Ctrl-C (SIGINT to the process group), a refused `dvc exp run` (DVC checks out the committed
    outputs first), SIGKILL, SIGTERM to `dvc repro` alone: after each, `dvc repro` resumes; DVCLive
    shows the epochs done and ends with each epoch logged once; the run ends with exactly the
    artifacts of an uninterrupted one."""
    from test_pipeline import assert_same_artifacts

    params = tiny_params(**{"train.epochs": 7, "train.lr_drop_epoch": 4})
    write_params(committed / "params.yaml", params)
    try:
        output, _ = start_and_stop(committed, ["dvc", "repro", "train"], 2, signal.SIGINT, group=True)
        assert "train: interrupted during epoch 3; `dvc repro` resumes after epoch 2" in output, output
        assert "exited with 130" in output and "Traceback" not in output
        assert checkpoint_epoch(committed / "checkpoints/train/last.pt") == 2  # whole, and the last finished

        result = run(committed, "dvc", "exp", "run", "-S", "+train.lamda_u=10")  # refused by `check`
        assert result.returncode != 0 and "train.lamda_u" in result.stderr
        write_params(committed / "params.yaml", params)  # (dvc exp run left its -S in params.yaml)

        # Killed after its third DivideMix epoch (2, 3, 4): dvc exp show and DVCLive's files show them.
        output, _ = start_and_stop(committed, ["dvc", "repro", "train"], 4, signal.SIGKILL, group=True)
        assert "resuming after epoch 2" in output, output  # from the kept progress, past DVC's checkout
        assert workspace_live_step(committed) == 4 and live_steps(committed) == [2, 3, 4]

        output, stage = start_and_stop(committed, ["dvc", "repro", "train"], 5, signal.SIGTERM, group=False)
        wait_gone(stage)  # the stage stops by itself: its parent, DVC, is gone (the parent-death signal)
        assert "resuming after epoch 4" in output, output
        assert "train: interrupted during epoch 6; `dvc repro` resumes after epoch 5" in output, output
        assert "Traceback" not in output

        final = dvc(committed, "repro", "train")  # (DVC drops its dead predecessor's lock entries itself)
        assert "resuming after epoch 5" in final.stdout + final.stderr
        assert not (committed / ".dividemix/resume/train").exists()  # finished: nothing kept
        for name in ("test_acc/ensemble", "labeled/by_net1", "lr"):  # every epoch exactly once
            assert live_steps(committed, name) == [2, 3, 4, 5, 6], name
        assert workspace_live_step(committed) == 6
        assert_same_artifacts(committed, reference_run(tiny_run, tmp_path / "reference", params), train_only=True)
    finally:
        restore(committed)
