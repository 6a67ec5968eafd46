"""`dividemix preset`: the paper's settings as named presets.

    dividemix preset list
    dividemix preset show NAME
    dividemix preset apply NAME [--params params.yaml] [--set KEY=VALUE ...]
    dividemix preset queue --table cifar [--params params.yaml] [--set KEY=VALUE ...] [--run] [--dry-run]

`apply` rewrites the parameter file with the preset's keys set (its comments and every other key
kept), validated before anything is written, atomically. A preset never names the data locations its
data set reads (data.root; WebVision's data.imagenet_val): those of the parameter file are kept, on
apply and in every queued experiment. `--set` gives them (or any key) or changes one of the preset's
values. Values are read as DVC reads params.yaml (YAML 1.2). `queue` queues one DVC experiment per
preset of a table (`dvc exp run --queue -n NAME -S key=value ...`), each validated first; `--run`
then starts the queue with one worker (`dvc queue start -j 1`).
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from dividemix_cli.errors import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser("preset", help="the paper's settings as named presets (list, show, apply, queue)",
                                   description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every preset, with the paper's numbers")
    listing.set_defaults(func=cmd_list)

    show = actions.add_parser("show", help="one preset's parameter overrides and notes")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)

    apply = actions.add_parser("apply", help="set a preset's parameters in params.yaml (validated, atomic)")
    apply.add_argument("name")
    apply.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file (default params.yaml)")
    apply.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="one more dotted key (a YAML value), after the preset's; repeatable")
    apply.set_defaults(func=cmd_apply)

    queue = actions.add_parser("queue", help="queue every preset of a table as a DVC experiment")
    queue.add_argument("--table", required=True, help="cifar | cifar-n | clothing1m | webvision")
    queue.add_argument("--params", type=Path, default=Path("params.yaml"),
                       help="the parameter file the presets are validated against (default params.yaml)")
    queue.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="one more dotted key for every queued experiment (e.g. train.seed=1); repeatable")
    queue.add_argument("--seeds", type=int, default=1, metavar="N",
                       help="N experiments per preset, NAME-seedK: K added to noise.seed and train.seed (default 1)")
    queue.add_argument("--run", action="store_true", help="then start the queue: dvc queue start -j 1")
    queue.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    queue.set_defaults(func=cmd_queue)


# ------------------------------------------------------------------------------- formatting
def format_value(value: Any) -> str:
    """A parameter value as YAML writes it (what `dvc exp run -S key=value` parses)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_list(args) -> int:
    from dividemix.paper.preset import PROTOCOL_NAMES
    from dividemix.paper.presets import PRESETS

    width = max(len(name) for name in PRESETS)
    print(f"{'preset':<{width}}  {'table':<10}  {'best %':>6}  {'last %':>6}  description")
    for preset in PRESETS.values():
        # "best %" is the best epoch (an oracle) and "last %" the last 10: the web tables' figures are
        # neither (best-validation weights; an unnamed epoch), so they are named after the description.
        figures = "".join(f"; paper ({PROTOCOL_NAMES[figure.protocol]}): " for figure in preset.figures[:1])
        figures += ", ".join(f"{figure.label} {figure.value:.2f}" for figure in preset.figures)
        print(f"{preset.name:<{width}}  {preset.table:<10}  {_percent(preset.paper_best):>6}  "
              f"{_percent(preset.paper_last):>6}  {preset.description}{figures}")
    return 0


def cmd_show(args) -> int:
    from dividemix.paper.presets import get_preset

    preset = get_preset(args.name)
    print(f"{preset.name}: {preset.description}")
    if preset.figures:  # the web tables: each number with the protocol that measured it
        from dividemix.paper.preset import PROTOCOL_NAMES

        for figure in preset.figures:
            print(f"paper: {figure.label} {figure.value:.2f}% ({PROTOCOL_NAMES[figure.protocol]})")
    else:
        print(f"paper: last (mean of the last 10 epochs) {_percent(preset.paper_last)}%, best epoch (an oracle: chosen "
              f"on the test set) {_percent(preset.paper_best)}%"
              + (f"; with {preset.paper_network}" if preset.paper_network else ""))
    print("overrides:")
    for key, value in preset.overrides.items():
        print(f"  {key}: {format_value(value)}")
    for note in preset.notes:
        print(f"note: {note}")
    return 0


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """`--set section.key=value` arguments as dotted overrides; values parsed as YAML 1.2, as DVC
    parses params.yaml (`1e-5` is a number)."""
    from dividemix.config import ConfigError, parse_params_text

    out = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or key.count(".") != 1 or not all(key.split(".")):
            raise CliError(f"--set {item!r}: expected section.key=value, e.g. data.root=/data/clothing1m")
        try:
            out[key] = parse_params_text(text, source="--set") if text else None
        except ConfigError:
            raise CliError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def _overrides(preset, sets: list[str]) -> dict[str, Any]:
    return preset.overrides | parse_sets(sets)


def _hint(preset) -> str:
    return " (give the keys this preset leaves to you with --set KEY=VALUE; see `dividemix preset show " \
        f"{preset.name}`)" if "data.root" not in preset.overrides else ""


# ------------------------------------------------------------------------------------- apply
def _read_params(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: parameter file not found") from None


def _parsed(text: str, source: str):
    """The parameter file's mapping as the stages and DVC read it (YAML 1.2, `config.parse_params_text`)."""
    from dividemix.config import ConfigError, parse_params_text

    try:
        return parse_params_text(text, source=source)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def apply_to_text(text: str, overrides: dict[str, Any]) -> str:
    """The YAML `text` with the dotted `overrides` set, its comments and key order kept (ruamel.yaml
    round trip); keys the file lacks are appended to their section."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode: comments, order and quoting survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CliError("the parameter file's top level must be a mapping of sections")
    for key, value in overrides.items():
        section, name = key.split(".")
        if section not in data or data[section] is None:
            data[section] = {}
        if not isinstance(data[section], dict):
            raise CliError(f"{section}: expected a section of keys in the parameter file, got {data[section]!r}")
        data[section][name] = value
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def cmd_apply(args) -> int:
    from dividemix.config import ConfigError, parse_config
    from dividemix.files.atomic import write_text_atomic
    from dividemix.paper.presets import get_preset

    preset = get_preset(args.name)
    overrides = _overrides(preset, args.sets)
    text = _read_params(args.params)
    _parsed(text, str(args.params))  # broken YAML: one line, before the round trip
    new_text = apply_to_text(text, overrides)
    # Validate exactly what will be written, read back as every stage reads it.
    try:
        source = f"{args.params} with preset {preset.name}"
        parse_config(_parsed(new_text, source), source=source)
    except ConfigError as exc:
        raise CliError(f"{exc}{_hint(preset)}") from None
    write_text_atomic(args.params, new_text)
    print(f"{args.params}: preset {preset.name} applied ({len(overrides)} keys)")
    for note in preset.notes:
        print(f"note: {note}")
    return 0


# ------------------------------------------------------------------------------------- queue
def queue_command(name: str, overrides: dict[str, Any]) -> list[str]:
    """`dvc exp run --queue -n NAME -S key=value ...` for one preset."""
    command = ["dvc", "exp", "run", "--queue", "-n", name]
    for key, value in overrides.items():
        command += ["-S", f"{key}={format_value(value)}"]
    return command


def _dvc() -> list[str]:
    """The dvc executable: the one on PATH, else the one installed beside this Python."""
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def _run(command: list[str]) -> None:
    print(shlex.join(command), flush=True)
    env = dict(os.environ, DVC_NO_ANALYTICS=os.environ.get("DVC_NO_ANALYTICS", "1"))
    result = subprocess.run(_dvc() + command[1:], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise CliError(f"`{shlex.join(command[:5])} ...` failed (exit {result.returncode}): "
                       f"{lines[-1] if lines else 'no output'}")


def seeded(presets, args, raw: dict) -> list[tuple[str, dict[str, Any]]]:
    """(experiment name, overrides) of each preset and seed (`--seeds N`: NAME-seed0 .. NAME-seedN-1,
    seed k adding k to noise.seed and train.seed, as `dividemix sweep --seeds`)."""
    if args.seeds < 1:
        raise CliError(f"--seeds {args.seeds}: the number of seeds must be at least 1")
    out = []
    for preset in presets:
        overrides = _overrides(preset, args.sets)
        if args.seeds == 1:
            out.append((preset.name, overrides))
            continue
        for k in range(args.seeds):
            seeds = {key: int(overrides.get(key, raw.get(key.split(".")[0], {}).get(key.split(".")[1], 0))) + k
                     for key in ("noise.seed", "train.seed")}
            out.append((f"{preset.name}-seed{k}", overrides | seeds))
    return out


def cmd_queue(args) -> int:
    from dividemix.config import ConfigError, parse_config
    from dividemix.paper.presets import apply_overrides, presets_in_table

    presets = presets_in_table(args.table)
    raw = _parsed(_read_params(args.params), str(args.params)) or {}
    if not isinstance(raw, dict):
        raise CliError(f"{args.params}: the top level must be a mapping of sections")
    for preset in presets:  # every experiment validated before any is queued
        try:
            parse_config(apply_overrides(raw, _overrides(preset, args.sets)), source=f"preset {preset.name}")
        except ConfigError as exc:
            raise CliError(f"{exc}{_hint(preset)}") from None
    commands = [queue_command(name, overrides) for name, overrides in seeded(presets, args, raw)]
    if args.run:
        commands.append(["dvc", "queue", "start", "-j", "1"])
    for command in commands:
        if args.dry_run:
            print(shlex.join(command))
        else:
            _run(command)
    if not args.dry_run:
        started = "started with one worker (dvc queue status; dvc exp show)" if args.run else \
            "queued; start them with: dvc queue start -j 1"
        print(f"{len(commands) - int(args.run)} experiments {started}")
    return 0
