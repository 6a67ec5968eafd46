"""The `dividemix` console script: one program for orchestration, audit and presets."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier

COMMANDS = ["run", "serve", "sweep", "diff", "trace", "export", "preset"]


def dividemix(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dividemix_cli", *args], capture_output=True, text=True)


def test_help_lists_every_command():
    result = dividemix("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout, command


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command):
    result = dividemix(command, "--help")
    assert result.returncode == 0 and "usage: dividemix " + command in result.stdout


def test_help_answers_without_importing_prefect_or_torch():
    # `dividemix --help` must be instant: the heavy imports happen inside the handlers.
    code = "import sys, dividemix_cli; dividemix_cli.build_parser(); print(sorted(m for m in ('prefect', 'torch') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_unknown_command_is_a_usage_error():
    result = dividemix("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr
