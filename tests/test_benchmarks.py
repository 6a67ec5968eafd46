"""Every script under benchmarks/ runs, at its smallest size: a library move that breaks one
fails here (bench_official.py once died on a function that had moved module). Slow tier: each
is a process of its own, several of them train. The figures they print are not checked; that
each prints its last line is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_PARAMS

pytestmark = pytest.mark.slow

HELPERS = {"common.py", "compute_limit.py", "official_edits.py"}  # imported by the scripts, run by none

# script -> (its smallest arguments, a line its output must hold: the end of a full run)
SMOKE = {
    "bench_cifar.py": (["--n-train", "64", "--batch", "8", "--steps", "1", "--warmup-steps", "0",
                        "--eval-batch", "32", "--eval-repeats", "1", "--variants", "fp32"], "fp32 "),
    "bench_cifar_run.py": (["--n-train", "64", "--n-test", "32", "--warmup-epochs", "1", "--dividemix-epochs", "1"],
                           "peak RSS:"),
    "bench_diff.py": (["--epochs", "2", "--samples", "200", "--repeats", "1"], "wall time: median"),
    "bench_distributed.py": (["--images", "64", "--side", "40", "--repeats", "1", "--processes", "1,2",
                              "--partner-sides", "32", "--partner-repeats", "1"], "global partners, 32 px"),
    "bench_epoch.py": (["--epochs", "1", "--repeats", "1", "--params", "{tiny}"], "benchmark wall time"),
    "bench_folder_scale.py": (["--sizes", "16", "--epochs", "1", "--num-batches", "1", "--batch-size", "4",
                               "--extra", "4"], "epoch_pss_ratio="),
    "bench_official.py": (["--model", "cnn_small", "--device", "cpu", "--n-train", "128", "--n-test", "64",
                           "--epochs", "1", "--repeats", "1", "--workers", "0"], "epoch_ratio="),
    "bench_repro.py": (["--params", "{tiny}"], "second run (no-op)"),
    "bench_serial.py": (["--sizes", "2000", "--repeats", "1"], "N = 2,000:"),
    "bench_switches.py": (["--params", "{tiny}", "--settings", "sym80", "--seeds", "1", "--epochs", "3",
                           "--warmup-epochs", "2", "--step-steps", "1"], "benchmark done"),
}


def test_every_benchmark_script_has_a_smoke_run():
    scripts = {path.name for path in (REPO / "benchmarks").glob("*.py")} - HELPERS
    assert scripts == set(SMOKE), "a benchmark without a smoke run here (or one gone): " + str(scripts ^ set(SMOKE))


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_a_benchmark_runs_at_its_smallest_size(script, tmp_path):
    tiny = tmp_path / "params.yaml"
    tiny.write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=False))
    arguments, last_words = SMOKE[script]
    env = dict(os.environ, PYTHONPATH=str(REPO / "pipeline"), OMP_NUM_THREADS="2", DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script),
                             *(a.replace("{tiny}", str(tiny)) for a in arguments)],
                            cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} failed ({result.returncode}):\n{output[-3000:]}"
    assert last_words in output, f"{script} did not finish its figures:\n{output[-3000:]}"
