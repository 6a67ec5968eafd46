"""The paper's presets: their values, validation, `paper_result`, and the `dividemix preset` commands."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, dvc_env, make_repo
from dividemix.config import Config, ConfigError, parse_config, select
from dividemix.paper.preset import SWITCH_KEYS
from dividemix.paper.presets import (
    CELL_KEYS,
    FIGURE_KEYS,
    PRESETS,
    TABLES,
    apply_overrides,
    find_preset,
    get_preset,
    paper_result,
    preset_config,
    preset_differences,
    presets_in_table,
)
from dividemix_cli import main as cli
from dividemix_cli.presets import apply_to_text, format_value

DEFAULT_PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
# The web presets leave where the user's copy is to them: a placeholder for the schema check.
FOLDER_PLACEHOLDERS = {"data.root": "data/images"}
FOLDER_SETS = [f"--set={key}={value}" for key, value in FOLDER_PLACEHOLDERS.items()]


def with_placeholders(name: str) -> dict:
    return FOLDER_PLACEHOLDERS if get_preset(name).overrides["data.dataset"] in ("clothing1m", "webvision") else {}


def test_the_expected_presets_exist():
    assert list(PRESETS) == [
        "cifar10-sym20", "cifar10-sym50", "cifar10-sym80", "cifar10-sym90", "cifar10-asym40",
        "cifar100-sym20", "cifar100-sym50", "cifar100-sym80", "cifar100-sym90",
        "cifar10n-aggre", "cifar10n-rand1", "cifar10n-worst", "cifar100n", "clothing1m", "webvision",
        *(f"{cell}-{method}" for method in ("augdesc-ws", "unicon")
          for cell in ("cifar10-sym80", "cifar10-sym90", "cifar100-sym80", "cifar100-sym90")),
    ]
    assert TABLES == ("cifar", "cifar-n", "clothing1m", "webvision", "successors")
    assert len(presets_in_table("cifar")) == 9


@pytest.mark.parametrize(
    "name, lambda_u, p_threshold, warmup, history, penalty, best, last",
    [
        ("cifar10-sym20", 0.0, 0.5, 10, 1, False, 96.1, 95.7),
        ("cifar10-sym50", 25.0, 0.5, 10, 1, False, 94.6, 94.4),
        ("cifar10-sym80", 25.0, 0.5, 10, 1, False, 93.2, 92.9),
        ("cifar10-sym90", 50.0, 0.6, 10, 5, False, 76.0, 75.4),
        ("cifar10-asym40", 0.0, 0.5, 10, 1, True, 93.4, 92.1),
        ("cifar100-sym20", 25.0, 0.5, 30, 1, False, 77.3, 76.9),
        ("cifar100-sym50", 150.0, 0.5, 30, 1, False, 74.6, 74.2),
        ("cifar100-sym80", 150.0, 0.5, 30, 1, False, 60.2, 59.6),
        ("cifar100-sym90", 150.0, 0.6, 30, 5, False, 31.5, 31.0),
    ],
)
def test_cifar_cells_follow_the_paper(name, lambda_u, p_threshold, warmup, history, penalty, best, last):
    preset = get_preset(name)
    o = preset.overrides
    assert (o["train.lambda_u"], o["train.p_threshold"], o["train.warmup_epochs"]) == (lambda_u, p_threshold, warmup)
    assert (o["train.loss_history"], o["train.conf_penalty"]) == (history, penalty)
    assert o["model.arch"] == "preact_resnet18" and o["train.epochs"] == 301 and o["train.lr"] == 0.02
    assert o["train.lr_drop_epoch"] == 150 and o["train.batch_size"] == 64 and o["train.rampup_epochs"] == 16
    assert o["train.amp"] is False and o["train.channels_last"] is True  # measured faster on a GPU
    assert (preset.paper_best, preset.paper_last) == (best, last)


# The official scripts' loops: `for epoch in range(args.num_epochs+1)`, warm-up while `epoch < warm_up`
# (Train_cifar.py: num_epochs 300, warm_up 10 / 30; Train_clothing1M.py: 80, `epoch < 1`; Train_webvision.py:
# 80, warm_up 1). Here warm-up is epochs 0..warmup_epochs-1 and DivideMix warmup_epochs..epochs-1.
OFFICIAL_LOOPS = {"cifar10": (300, 10), "cifar100": (300, 30), "clothing1m": (80, 1), "webvision": (80, 1)}


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_run_the_official_epochs(name: str):
    """The same warm-up and DivideMix epoch numbers as the official run, so "last" (its final epoch),
    the last 10 and Clothing1M's best-validation choice cover the epochs the official log does."""
    o = get_preset(name).overrides
    num_epochs, warm_up = OFFICIAL_LOOPS[o["data.dataset"]]
    official = range(num_epochs + 1)
    warmup, dividemix = range(o["train.warmup_epochs"]), range(o["train.warmup_epochs"], o["train.epochs"])
    assert list(warmup) == [e for e in official if e < warm_up]
    assert list(dividemix) == [e for e in official if e >= warm_up]
    assert list(dividemix[-10:]) == list(range(num_epochs - 9, num_epochs + 1))  # 291..300, 71..80
    assert o["train.lr_drop_epoch"] == {300: 150, 80: 40}[num_epochs]  # `if epoch >= 150` / `>= 40`


def test_real_noise_presets():
    worst = get_preset("cifar10n-worst").overrides
    assert (worst["noise.mode"], worst["noise.file"], worst["noise.key"]) == ("file", "labels/CIFAR-10_human.pt",
                                                                             "worse_label")
    assert get_preset("cifar10n-aggre").overrides["noise.key"] == "aggre_label"
    assert get_preset("cifar10n-rand1").overrides["noise.key"] == "random_label1"
    c100n = get_preset("cifar100n").overrides
    assert (c100n["data.dataset"], c100n["noise.file"], c100n["noise.key"]) == ("cifar100", "labels/CIFAR-100_human.pt",
                                                                                "noisy_label")
    assert c100n["train.warmup_epochs"] == 30
    assert [get_preset(n).paper_best for n in ("cifar10n-aggre", "cifar10n-rand1", "cifar10n-worst", "cifar100n")] == \
        [95.01, 95.16, 92.56, 71.13]
    clothing = get_preset("clothing1m").overrides
    assert (clothing["model.arch"], clothing["train.protocol"], clothing["train.lr"], clothing["train.batch_size"],
            clothing["train.weight_decay"], clothing["train.alpha"], clothing["train.lambda_u"],
            clothing["train.epochs"], clothing["train.lr_drop_epoch"], clothing["train.conf_penalty"]) == \
        ("resnet50", "clothing1m", 0.002, 32, 0.001, 0.5, 0.0, 81, 40, True)
    web = get_preset("webvision").overrides
    assert (web["model.arch"], web["train.lr"], web["model.pretrained"]) == ("inception_resnet_v2", 0.01, None)
    # the web tables' figures are neither a best epoch nor a last 10: no "best" or "last" holds them
    assert [(get_preset(n).paper_best, get_preset(n).paper_last) for n in ("clothing1m", "webvision")] == [(None, None)] * 2
    assert [f.value for n in ("clothing1m", "webvision") for f in get_preset(n).figures] == \
        [74.76, 77.32, 91.64, 75.20, 90.84]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_validates_against_the_default_params(name: str):
    config = preset_config(apply_overrides(DEFAULT_PARAMS, with_placeholders(name)), name)
    dumped = config.model_dump()
    for key, value in get_preset(name).overrides.items():  # every override is a key of the right type
        section, field = key.split(".")
        assert dumped[section][field] == value, key


@pytest.mark.parametrize("first", ["clothing1m", "cifar10n-worst", "cifar10-asym40"])
def test_presets_apply_over_one_another(first: str):
    """Each preset resets what another one set (folder keys, label file), so any order validates."""
    raw = apply_overrides(DEFAULT_PARAMS, get_preset(first).overrides | with_placeholders(first))
    parse_config(raw)
    for name in PRESETS:
        preset_config(apply_overrides(raw, with_placeholders(name)), name)


def test_folder_presets_without_the_users_paths_are_refused():
    with pytest.raises(ConfigError, match="data.root: required"):
        preset_config(DEFAULT_PARAMS, "clothing1m")


def test_unknown_preset_lists_the_allowed_names():
    with pytest.raises(ValueError, match=r"unknown preset 'cifar10-sym30'; allowed: cifar10-sym20, .*webvision"):
        get_preset("cifar10-sym30")
    with pytest.raises(ValueError, match="unknown table"):
        presets_in_table("imagenet")


# --------------------------------------------------------------------------------- lookup
def cell(**dotted) -> dict:
    base = {"data.dataset": "cifar10", "noise.mode": "sym", "noise.rate": 0.5, "noise.file": None,
            "noise.key": None, "train.protocol": "cifar", "model.arch": "preact_resnet18"}
    return base | dotted


def test_paper_result_finds_each_presets_own_cell():
    for preset in PRESETS.values():
        params = {key: preset.overrides.get(key) for key in CELL_KEYS}
        params |= {key: preset.overrides[key] for key in SWITCH_KEYS if key in preset.overrides}  # (absent: default)
        assert paper_result(params) == (preset.name, preset.paper_best, preset.paper_last)


def test_paper_result_matches_the_setting_not_the_hyper_parameters():
    assert paper_result(cell()) == ("cifar10-sym50", 94.6, 94.4)
    assert paper_result(cell(**{"model.arch": "cnn_small"})) == ("cifar10-sym50", 94.6, 94.4)
    assert paper_result(cell(**{"noise.rate": 0.50000000001}))[0] == "cifar10-sym50"
    assert paper_result(cell(**{"data.dataset": "cifar100", "noise.rate": 0.9})) == ("cifar100-sym90", 31.5, 31.0)
    # the CIFAR-N release wherever it is kept, told apart by its key
    worst = cell(**{"noise.mode": "file", "noise.file": "/data/CIFAR-10_human.pt", "noise.key": "worse_label"})
    assert paper_result(worst) == ("cifar10n-worst", 92.56, None)
    web = cell(**{"noise.mode": "none"})
    assert paper_result(web | {"data.dataset": "clothing1m", "train.protocol": "clothing1m"})[0] == "clothing1m"
    assert paper_result(web | {"data.dataset": "webvision", "train.protocol": "webvision"})[0] == "webvision"
    # a user's own folder is no paper cell, whatever its protocol
    assert paper_result(web | {"data.dataset": "folder", "train.protocol": "clothing1m"}) is None


@pytest.mark.parametrize("dotted", [
    {"noise.rate": 0.4},  # no sym 40% cell
    {"data.dataset": "digits"},
    {"noise.mode": "sym_true"},  # the appendix's variant, not in the table
    {"noise.mode": "asym", "noise.rate": 0.2},
    {"data.dataset": "cifar100", "noise.mode": "asym", "noise.rate": 0.4},  # no CIFAR-100 asym cell
    {"train.protocol": "clothing1m"},
    {"noise.mode": "file", "noise.file": "labels/CIFAR-10_human.pt", "noise.key": "random_label2"},
    {"noise.mode": "none"},
])
def test_paper_result_is_none_off_the_table(dotted):
    assert paper_result(cell(**dotted)) is None


def test_find_preset_accepts_a_config():
    config = preset_config(DEFAULT_PARAMS, "cifar10-asym40")
    assert find_preset(config).name == "cifar10-asym40"
    assert preset_differences(config, "cifar10-asym40") == []
    shorter = parse_config(apply_overrides(config.model_dump(mode="json"), {"train.epochs": 30}))
    assert preset_differences(shorter, "cifar10-asym40") == [("train.epochs", 30, 301)]
    dotted = select(config, FIGURE_KEYS)
    assert preset_differences(dotted | {"train.epochs": 30}, "cifar10-asym40") == [("train.epochs", 30, 301)]
    # a mapping lacking keys (an experiment from before they existed) is read with the defaults
    assert ("model.arch", "cnn_small", "preact_resnet18") in preset_differences({"train.epochs": 30}, "cifar10-asym40")


def _run_of(name: str, **changes) -> dict:
    """The dotted parameters of a run of preset `name` (placeholders for the user's keys), then `changes`."""
    config = preset_config(apply_overrides(DEFAULT_PARAMS, with_placeholders(name)), name)
    return select(config, [f"{s}.{k}" for s, f in Config.model_fields.items() for k in f.annotation.model_fields]) \
        | changes


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_run_of_the_preset_is_like_for_like_whatever_its_locations_and_seeds(name: str):
    neutral = {"data.root": "/elsewhere", "noise.seed": 7, "train.seed": 9, "data.workers": 3, "data.storage": "disk",
               "train.device": "cuda", "train.eval_batch_size": 256, "train.compile": True,
               "distributed.processes_per_machine": 2, "data.flip": True}  # flip true: what null means here
    assert preset_differences(_run_of(name), name) == []
    assert preset_differences(_run_of(name, **neutral), name) == []


@pytest.mark.parametrize("key, value", [
    ("train.epochs", 80), ("data.num_classes", 100), ("model.arch", "resnet50"), ("data.flip", False),
    ("train.lr", 0.02), ("data.image_size", 224), ("ablation.co_guessing", False), ("train.alpha", 4.0),
    ("train.num_batches", 10),
])
def test_any_parameter_that_changes_the_figure_departs(key, value):
    """The issue's own examples (100 classes, another network, fewer epochs) and the rest of a preset."""
    name = "webvision" if key != "train.num_batches" else "clothing1m"
    assert [(k, v) for k, v, _ in preset_differences(_run_of(name, **{key: value}), name)] == [(key, value)]


def test_what_a_null_resolves_to_and_unread_keys_do_not_depart():
    web = _run_of("webvision", **{"data.image_size": 299, "data.resize": 320, "data.num_classes": 50,
                                  "data.train_crop": "random_resized", "data.mean": [0.485, 0.456, 0.406],
                                  "data.std": [0.229, 0.224, 0.225], "model.pretrained": None})
    assert preset_differences(web, "webvision") == []
    unread = {"noise.rate": 0.2, "train.num_batches": 7, "train.rampup_epochs": 3}  # no noise, no sample, lambda_u 0
    assert preset_differences(_run_of("webvision", **unread), "webvision") == []
    elsewhere = _run_of("clothing1m", **{"model.pretrained": "/models/resnet50-0676ba61.pth"})  # same weights
    assert preset_differences(elsewhere, "clothing1m") == []
    assert preset_differences(_run_of("cifar10-sym50", **{"train.rampup_epochs": 5}), "cifar10-sym50") == [
        ("train.rampup_epochs", 5, 16)]  # lambda_u 25: the ramp is read


def test_the_null_values_are_the_data_sets_own():
    from dividemix.datasets.folder import CLOTHING1M, WEBVISION
    from dividemix.paper.web_presets import REFERENCE_DATA

    for spec in (CLOTHING1M, WEBVISION):
        ref = REFERENCE_DATA[spec.name]
        assert (ref["data.image_size"], ref["data.resize"], ref["data.train_crop"]) == \
            (spec.crop_size, spec.resize, spec.train_crop)
        assert (tuple(ref["data.mean"]), tuple(ref["data.std"])) == (tuple(spec.mean), tuple(spec.std))
    assert REFERENCE_DATA["webvision"]["data.num_classes"] == 50


# ------------------------------------------------------------------------------- CLI: apply
COMMENTED = """\
# my experiment
data:
  dataset: digits   # which data
noise:
  mode: sym
  rate: 0.5         # the rate
model:
  arch: cnn_small
train:
  epochs: 30
  lambda_u: 25.0    # after the ramp
"""


def test_apply_to_text_keeps_comments_and_adds_missing_keys():
    text = apply_to_text(COMMENTED, {"noise.rate": 0.8, "train.lambda_u": 150.0, "train.amp": True,
                                     "ablation.co_divide": True})
    assert "# my experiment" in text and "# which data" in text and "# the rate" in text and "# after the ramp" in text
    loaded = yaml.safe_load(text)
    assert loaded["noise"]["rate"] == 0.8 and loaded["train"]["lambda_u"] == 150.0 and loaded["train"]["amp"] is True
    assert loaded["ablation"] == {"co_divide": True}
    assert loaded["train"]["epochs"] == 30 and loaded["data"]["dataset"] == "digits"


def test_apply_writes_exactly_the_overrides_and_validates(tmp_path: Path, capsys):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = yaml.safe_load(params.read_text())
    assert cli(["preset", "apply", "cifar100-sym90", "--params", str(params)]) == 0
    after = yaml.safe_load(params.read_text())
    overrides = get_preset("cifar100-sym90").overrides
    assert after == apply_overrides(before, overrides)  # those keys, and nothing else, changed
    assert "# DivideMix pipeline parameters" in params.read_text()  # comments survive
    assert "# weight of the unlabeled loss after the ramp" in params.read_text()
    parse_config(after)
    assert "preset cifar100-sym90 applied" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no temporary file left


def test_apply_refuses_an_invalid_result_and_writes_nothing(tmp_path: Path, capsys):
    params = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text().replace("  seed: 123", "  seed: 123\n  bogus: 1")
    params.write_text(text)
    assert cli(["preset", "apply", "cifar10-sym50", "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.bogus: unknown key" in err[0]
    assert params.read_text() == text


def test_apply_with_the_users_keys(tmp_path: Path, capsys):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    text = params.read_text()
    assert cli(["preset", "apply", "clothing1m", "--params", str(params)]) == 2  # no data.root yet
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.root: required" in err[0] and "--set KEY=VALUE" in err[0]
    assert params.read_text() == text
    assert cli(["preset", "apply", "clothing1m", "--params", str(params), *FOLDER_SETS,
                "--set", "train.seed=7"]) == 0
    after = yaml.safe_load(params.read_text())
    assert after["data"]["root"] == "data/images" and after["train"]["seed"] == 7
    assert after["model"]["arch"] == "resnet50" and after["train"]["lr"] == 0.002
    assert cli(["preset", "apply", "clothing1m", "--params", str(params), "--set", "root=/x"]) == 2
    assert "expected section.key=value" in capsys.readouterr().err


def test_unknown_preset_is_a_one_line_error(capsys):
    assert cli(["preset", "show", "cifar10-sym30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown preset 'cifar10-sym30'; allowed: cifar10-sym20" in err[0]


def test_list_and_show(capsys):
    assert cli(["preset", "list"]) == 0
    out = capsys.readouterr().out
    for preset in PRESETS.values():
        assert preset.name in out
    assert "94.60" in out and "74.76" in out
    # "best %" is the best epoch (an oracle): the web figures stand after the description, with their protocol
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["clothing1m"][2:4] == ["-", "-"] and rows["webvision"][2:4] == ["-", "-"]
    assert "best-validation weights" in " ".join(rows["clothing1m"]) and "77.32" in " ".join(rows["webvision"])
    assert cli(["preset", "show", "cifar10n-worst"]) == 0
    out = capsys.readouterr().out
    assert "noise.key: worse_label" in out and "92.56" in out and "closest paper cell, cifar10-sym50" in out


# ------------------------------------------------------------------------------- CLI: queue
def test_queue_dry_run_prints_one_command_per_cifar_cell(tmp_path: Path, capsys):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert cli(["preset", "queue", "--table", "cifar", "--params", str(tmp_path / "params.yaml"),
                "--run", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 10 and lines[-1] == "dvc queue start -j 1"
    assert lines[3].startswith("dvc exp run --queue -n cifar10-sym90 -S data.dataset=cifar10 ")
    assert "-S train.lambda_u=50.0" in lines[3] and "-S train.loss_history=5" in lines[3]
    assert "-S model.pretrained=null" in lines[0] and "-S train.channels_last=true" in lines[0]
    assert format_value(0.0005) == "0.0005" and format_value(False) == "false"


@pytest.mark.stage
def test_queue_creates_queued_dvc_experiments(tmp_path: Path, monkeypatch, capsys):
    """In a fresh git + DVC repository with the pipeline committed (experiments need a commit)."""
    root = make_repo(tmp_path / "project", yaml.safe_load((REPO / "params.yaml").read_text()))
    env = dvc_env(root)
    for command in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "pipeline"]):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)

    assert cli(["preset", "queue", "--table", "cifar-n"]) == 0  # 4 presets: quicker than the 9 CIFAR cells
    out = capsys.readouterr().out
    assert "4 experiments queued" in out

    status = subprocess.run(["dvc", "queue", "status"], cwd=root, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    for name in ("cifar10n-aggre", "cifar10n-rand1", "cifar10n-worst", "cifar100n"):
        assert name in status.stdout
    assert status.stdout.count("Queued") == 4
    # each queued experiment carries its preset: the params.yaml of DVC's queue entries, whose
    # commit messages end in ":<name>" (the reflog of refs/exps/celery/stash)
    log = subprocess.run(["git", "log", "-g", "--format=%H %gs", "refs/exps/celery/stash"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout
    entries = {line.rsplit(":", 1)[1]: line.split()[0] for line in log.strip().splitlines()}
    assert sorted(entries) == ["cifar100n", "cifar10n-aggre", "cifar10n-rand1", "cifar10n-worst"]
    for name, commit in entries.items():
        shown = subprocess.run(["git", "show", f"{commit}:params.yaml"], cwd=root, env=env, capture_output=True,
                               text=True, check=True).stdout
        config = parse_config(yaml.safe_load(shown))
        assert find_preset(config) is not None and find_preset(config).name == name
        assert preset_differences(config, name) == []
    assert yaml.safe_load((root / "params.yaml").read_text()) == DEFAULT_PARAMS  # the workspace is untouched


# ------------------------------------------------------------------- the user's data locations
LOCATIONS = ("data.root", "data.imagenet_val", "data.train_list", "data.val_list", "data.test_list",
             "data.test2_list", "data.truth_list")


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_names_only_the_locations_its_data_set_refuses(name: str):
    """Apply and queue keep every location the preset's data set reads (the user's copy); a preset
    nulls a location only where the configuration would refuse it (e.g. data.root for CIFAR)."""
    preset = get_preset(name)
    base = apply_overrides(DEFAULT_PARAMS, preset.overrides | with_placeholders(name))
    for key in LOCATIONS:
        try:
            parse_config(apply_overrides(base, {key: "lists/somewhere.txt"}))
            read = True
        except ConfigError:
            read = False
        assert (key in preset.overrides) is not read, key


def test_apply_keeps_the_users_imagenet_val_and_root(tmp_path: Path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(apply_overrides(DEFAULT_PARAMS, {
        "data.dataset": "webvision", "data.root": "/data/webvision", "data.imagenet_val": "/data/imagenet/val",
        "noise.mode": "none"})))
    assert cli(["preset", "apply", "webvision", "--params", str(params)]) == 0
    after = yaml.safe_load(params.read_text())["data"]
    assert (after["root"], after["imagenet_val"]) == ("/data/webvision", "/data/imagenet/val")
    assert cli(["preset", "apply", "webvision", "--params", str(params), "--set", "data.root=/mnt/web"]) == 0
    after = yaml.safe_load(params.read_text())["data"]
    assert (after["root"], after["imagenet_val"]) == ("/mnt/web", "/data/imagenet/val")  # --set changes one
    assert cli(["preset", "queue", "--table", "webvision", "--params", str(params), "--dry-run"]) == 0
    queued = capsys.readouterr().out.strip().splitlines()[-1]
    assert "data.imagenet_val" not in queued and "data.root" not in queued  # the queued run keeps params.yaml's


def test_apply_and_queue_read_numbers_as_dvc_writes_them(tmp_path: Path, capsys):
    """`--set` values and the file are YAML 1.2, as DVC's: 1e-5 is a number, a quoted "0.1" is refused."""
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    assert cli(["preset", "apply", "cifar10-sym50", "--params", str(params), "--set", "train.weight_decay=1e-5"]) == 0
    assert "weight_decay: 1e-05" in params.read_text()
    text = params.read_text()
    assert cli(["preset", "apply", "cifar10-sym50", "--params", str(params), "--set", 'train.lr="0.1"']) == 2
    assert "train.lr" in capsys.readouterr().err and params.read_text() == text


# ------------------------------------------------------------------- the table: like for like or said so
def test_the_table_sets_the_paper_beside_like_for_like_runs_only():
    from dividemix.paper.table import COLUMNS, FIGURE_COLUMNS, build_rows, figure_cells, to_markdown

    metrics = {"test_acc_last10": 0.94, "test_acc_best": 0.95, "test_acc_best_val": 0.74}
    runs = [("c10", _run_of("cifar10-sym50"), metrics),
            ("c10-short", _run_of("cifar10-sym50", **{"train.epochs": 10, "train.warmup_epochs": 5}), metrics),
            ("web100", _run_of("webvision", **{"data.num_classes": 100}), metrics),
            ("c1m", _run_of("clothing1m", **{"data.root": "/elsewhere", "train.seed": 5}), metrics),
            ("digits", _run_of("cifar10-sym50", **{"data.dataset": "digits"}), metrics)]
    rows = {row.experiments[0]: row for row in build_rows(runs)}
    assert (rows["c10"].paper_last, rows["c10"].paper_best, rows["c10"].comparison) == (94.4, 94.6, "like for like")
    short = rows["c10-short"]
    assert (short.paper_last, short.paper_best) == (None, None)
    assert short.comparison == ("not like for like (preset cifar10-sym50): departs in train.epochs 10 (preset 301), "
                                "train.warmup_epochs 5 (preset 10)")
    assert [paper for _, _, paper in rows["web100"].figures] == [None] * 4  # the 100 classes
    assert "data.num_classes 100 (preset null)" in rows["web100"].comparison
    assert [paper for _, _, paper in rows["c1m"].figures] == [74.76] and rows["c1m"].comparison == "like for like"
    assert rows["digits"].comparison == "no paper cell"
    # the column labels say which figure each paper number is
    assert "mean of its last 10 epochs" in COLUMNS[3] and "best epoch" in COLUMNS[5]
    assert "best-validation weights" in FIGURE_COLUMNS[3] and "official log" in FIGURE_COLUMNS[3]
    cells = figure_cells(list(rows.values()))
    assert [c[3] for c in cells if c[0] == rows["web100"].setting] == ["-"] * 4
    assert "74.76" in to_markdown(list(rows.values())) and "77.32" not in to_markdown(list(rows.values()))
