"""The Prefect layer against a real Prefect server: the flow, its artifacts, serve, sweeps, failures.

One server for the session (tests/prefect_server.py) and one tiny pipeline repository for the
module: the first flow run builds it, later tests reuse its DVC cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_PARAMS, checksums, dvc, dvc_env, make_repo, tiny_params, write_params
from prefect_server import prefect_api  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier

# dvc.yaml declares its stages in dependency order (test_stage_order_is_dvcs checks DVC's order).
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
TINY_EPOCHS = TINY_PARAMS["train"]["epochs"]
TINY_WARMUP = TINY_PARAMS["train"]["warmup_epochs"]


def _run(coroutine):
    return asyncio.run(coroutine)


async def _task_runs(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), sort=TaskRunSort.EXPECTED_START_TIME_ASC
        )


async def _artifacts(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


async def _logs(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = []
    async with get_client() as client:
        while True:  # the API answers at most 200 at a time
            page = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=len(logs)
            )
            logs += page
            if len(page) < 200:
                return logs


@pytest.fixture(scope="module")
def dvc_environment(tmp_path_factory):
    """DVC and Git settings of the test repositories, for this process and the flows' subprocesses."""
    site = tmp_path_factory.mktemp("dvc_site")
    env = dvc_env(site)
    with pytest.MonkeyPatch.context() as patch:
        for key in ("PATH", "DVC_NO_ANALYTICS", "DVC_SITE_CACHE_DIR", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                    "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
            patch.setenv(key, env[key])
        yield env


# The outputs of the stages before train are the tiny run's, committed to DVC: the first flow run
# finds them cached and runs the rest (both kinds of task in one run, and half a minute saved).
PREPARED_STAGES = ("download", "noise", "warmup", "baseline")


@pytest.fixture(scope="module")
def first_run(prefect_api, dvc_environment, tiny_run, tmp_path_factory):
    """The tiny pipeline run once through the flow: (repository, final flow-run state)."""
    from dividemix_flows.pipeline import dividemix_pipeline

    root = make_repo(tmp_path_factory.mktemp("flow") / "project", tiny_params())
    for part in ("data", "metrics", "checkpoints/warmup", "artifacts/warmup", "artifacts/baseline", "live/warmup",
                 "live/baseline"):
        shutil.copytree(tiny_run / part, root / part)
    dvc(root, "commit", "-f", *PREPARED_STAGES)
    state = dividemix_pipeline(repo=str(root), return_state=True)
    assert state.is_completed(), state.message
    return root, state


# --- no server needed -------------------------------------------------------------------------


def test_stages_do_not_import_prefect(tmp_path: Path):
    """`dvc repro` needs no Prefect: no stage script imports it (importing all, running two)."""
    probe = (
        "import runpy, sys\n"
        "for script, argv in [(s, ['--help']) for s in sys.argv[1].split(',')] + [(sys.argv[2], ['--sources', 'sources.json', '--prepared', 'prepared'])]:\n"
        "    sys.argv = [script, *argv]\n"
        "    try:\n"
        "        runpy.run_path(script, run_name='__main__')\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, (script, exc.code)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'prefect_dask', 'distributed', 'dividemix_flows'))\n"
        "print('LOADED', loaded)\n"
    )
    scripts = sorted(str(path) for path in (REPO / "stages").glob("*.py"))
    assert len(scripts) >= len(STAGES)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    write_params(tmp_path / "params.yaml", tiny_params())
    (tmp_path / "sources.json").write_text('{"dataset": "digits"}')  # the check stage's manifest of digits
    result = subprocess.run(
        [sys.executable, "-c", probe, ",".join(scripts), str(REPO / "stages/download.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout
    assert (tmp_path / "prepared").is_dir()  # download ran for real


def test_flow_outputs_are_dvc_outs():
    """The files the flow reads are what dvc.yaml says the stages write."""
    from dividemix_flows import outputs

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = {next(iter(out)) if isinstance(out, dict) else out for stage in stages.values() for out in stage.get("outs", [])}
    outs |= {next(iter(m)) if isinstance(m, dict) else m for stage in stages.values() for m in stage.get("metrics", [])}
    for path in (outputs.WARMUP_EPOCHS, outputs.EPOCHS, outputs.DIVISION_CSV, outputs.EVAL_JSON, outputs.REPORT_MD, outputs.REPORT_HTML):
        assert any(path == out or path.startswith(out.rstrip("/") + "/") for out in outs), path


def test_stage_order_is_dvcs(dvc_environment, tmp_path: Path):
    from dividemix_flows.dvcinfo import stage_order

    root = make_repo(tmp_path / "project", tiny_params())
    order = stage_order(root)
    assert order == STAGES
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():  # every stage comes after the stage writing each of its deps
        for dep in stage.get("deps", []):
            for other, spec in stages.items():
                if any(dep == out or dep.startswith(f"{out}/") for out in (next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", []))):
                    assert order.index(other) < order.index(name), (other, name)


def test_bad_cli_input_is_one_line_error(capsys, tmp_path: Path):
    from dividemix_cli import main

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    write_params(tmp_path / "params.yaml", tiny_params())
    cases = [
        (["serve", "--repo", str(tmp_path), "--cron", "0 3 * *"], "a cron expression has 5 fields"),
        (["serve", "--repo", str(tmp_path), "--cron", "61 3 * * *"], "not a valid cron expression"),
        (["sweep", "--repo", str(tmp_path), "--set", "noise.rate=0.2,1.5"], "--set noise.rate=1.5: Input should be less than or equal to 1"),
        (["sweep", "--repo", str(tmp_path), "--set", "noise.mode=sym,foo"], "--set noise.mode=foo:"),
        (["sweep", "--repo", str(tmp_path), "--set", "train.nope=1"], "--set train.nope=1: unknown key"),
        (["sweep", "--repo", str(tmp_path), "--set", "noise.rate"], "expected KEY=V1,V2"),
        (["sweep", "--repo", str(tmp_path), "--set", "noise.rate=0.2", "-j", "0"], "-j 0"),
        (["sweep", "--repo", str(tmp_path), "--set", "noise.rate=0.2", "--address", "localhost:8786"], "tcp://"),
        (["run", "--repo", str(tmp_path / "nowhere")], "no dvc.yaml"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (argv, err)


def test_grid_is_the_product_and_names_are_refs():
    from dividemix_flows.grid import grid_points, parse_grid, point_name

    points = grid_points(parse_grid(["noise.rate=0.2,0.5,0.8", "noise.mode=sym,asym"]))
    assert len(points) == 6 and points[1] == {"noise.rate": "0.2", "noise.mode": "asym"}
    names = {point_name("sweep", i, p) for i, p in enumerate(points, 1)}
    assert len(names) == 6 and all(" " not in n and "=" not in n for n in names)


# --- against the server ------------------------------------------------------------------------


def test_flow_runs_one_task_per_stage_in_dvc_order(first_run):
    root, state = first_run
    assert state.result() == {stage: "cached" if stage in PREPARED_STAGES else "ran" for stage in STAGES}
    runs = _run(_task_runs(state.state_details.flow_run_id))
    assert [run.name for run in runs] == STAGES
    assert all(run.state.is_completed() for run in runs)
    assert [run.name for run in runs if run.state.name == "Cached"] == list(PREPARED_STAGES)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)  # dvc.lock stays the one record
    logs = "\n".join(log.message for log in _run(_logs(state.state_details.flow_run_id)))
    assert "Running stage 'train'" in logs  # DVC's and the stage's lines, streamed into the task log
    total = TINY_EPOCHS - TINY_WARMUP
    for done in range(1, total + 1):
        assert f"[train] {done}/{total} epoch=" in logs


def test_progress_table_report_and_link_artifacts(first_run):
    root, state = first_run
    artifacts = _run(_artifacts(state.state_details.flow_run_id))
    by_key: dict[str, list] = {}
    for artifact in sorted(artifacts, key=lambda a: a.created):
        by_key.setdefault(artifact.key, []).append(artifact)
    (progress,) = by_key["dividemix-train-progress"]  # (warmup and baseline were cached)
    assert progress.type == "progress" and float(progress.data) == 100.0
    table = json.loads(by_key["dividemix-epochs"][-1].data)  # the version after evaluate
    assert [row["epoch"] for row in table] == list(range(TINY_EPOCHS))
    dividemix_rows = [row for row in table if row["phase"] == "dividemix"]
    assert len(dividemix_rows) == TINY_EPOCHS - TINY_WARMUP
    assert all(row["auc_net1"] is not None and row["labeled_by_net1"] > 0 for row in dividemix_rows)
    assert all(0.0 <= row["test_acc"] <= 1.0 for row in table)
    (report,) = by_key["dividemix-report"]
    assert report.type == "markdown" and report.data == (root / "report/report.md").read_text()
    (link,) = by_key["dividemix-report-html"]
    assert link.type == "markdown" and (root / "report/index.html").resolve().as_uri() in link.data


def test_second_run_reports_every_stage_cached(first_run, capsys):
    """Through the command line this time: `dividemix run --repo DIR`."""
    from dividemix_cli import main

    root, first = first_run
    assert main(["run", "--repo", str(root)]) == 0
    # only `check` runs, as on every repro (it takes the data's sources' manifest): the rest is cached
    assert f"1 stage(s) ran (check), {len(STAGES) - 1} cached" in capsys.readouterr().out

    async def latest_flow_run():
        from prefect import get_client
        from prefect.client.schemas.sorting import FlowRunSort

        async with get_client() as client:
            (run,) = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
            return run

    latest = _run(latest_flow_run())
    assert latest.id != first.state_details.flow_run_id and latest.state.is_completed()
    runs = _run(_task_runs(latest.id))
    assert [run.name for run in runs] == STAGES
    assert all(run.state.name == "Cached" and "cached" in run.state.message for run in runs if run.name != "check")
    assert runs[0].name == "check" and runs[0].state.name == "Completed"


def test_failing_stage_fails_the_flow_with_its_message_and_rerun_uses_the_cache(first_run):
    """A bad value is refused by the first stage (`check`): the flow fails with its one line, no
    other stage runs, and with the parameters restored everything is cached again."""
    from dividemix_flows.pipeline import dividemix_pipeline

    root, _ = first_run
    before = checksums(root)
    write_params(root / "params.yaml", tiny_params(**{"train.lambda_u": -1.0}))
    try:
        state = dividemix_pipeline(repo=str(root), return_state=True)
    finally:
        write_params(root / "params.yaml", tiny_params())
    assert checksums(root) == before  # every output byte for byte
    assert state.is_failed()
    assert "stage 'check' failed" in state.message and "train.lambda_u" in state.message, state.message
    runs = {run.name: run for run in _run(_task_runs(state.state_details.flow_run_id))}
    assert list(runs) == ["check"]  # nothing after the failed stage
    assert runs["check"].state.is_failed() and "train.lambda_u" in runs["check"].state.message
    again = dividemix_pipeline(repo=str(root), return_state=True)  # parameters restored: all cached
    assert again.result() == {stage: "ran" if stage == "check" else "cached" for stage in STAGES}


@pytest.fixture(scope="module")
def committed_repo(first_run, dvc_environment):
    """The flow's repository with its code, parameters and dvc.lock committed (experiments need a commit)."""
    root, _ = first_run
    subprocess.run("git add -A && git commit -qm pipeline", shell=True, cwd=root, check=True, env=dvc_environment)
    return root


def _experiments(root: Path, env) -> dict[str, dict]:
    result = subprocess.run(["dvc", "exp", "show", "--json"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    found = {}
    for baseline in json.loads(result.stdout):
        for experiment in baseline.get("experiments") or []:
            for rev in experiment["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def test_two_point_sweep_on_a_local_dask_cluster(committed_repo, dvc_environment, capsys):
    from distributed import LocalCluster

    from dividemix_cli import main

    # One point is the committed parameters (every stage cached), the other reruns train onwards.
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", dashboard_address=None) as cluster:
        code = main(["sweep", "--repo", str(committed_repo), "--set", "train.lambda_u=25.0,10", "-j", "2",
                     "--address", cluster.scheduler_address, "--name", "dask"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 of 2 points finished" in out
    experiments = _experiments(committed_repo, dvc_environment)
    for name, lambda_u in (("dask-1-25.0", 25.0), ("dask-2-10", 10)):
        data = experiments[name]
        assert data["params"]["params.yaml"]["data"]["train"]["lambda_u"] == lambda_u
        assert 0.0 <= data["metrics"]["metrics/eval.json"]["data"]["test_acc_best"] <= 1.0


def test_failing_sweep_point_does_not_stop_the_others(committed_repo, dvc_environment, capsys):
    """Default runner (local dvc processes); train.device=cuda passes validation but fails on a CPU-only machine."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA for the failing point")
    from dividemix_cli import main

    code = main(["sweep", "--repo", str(committed_repo), "--set", "train.device=cpu,cuda", "-j", "2", "--name", "dev"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAILED  dev-2-cuda" in out and "no CUDA device is available" in out, out
    assert "1 of 2 points finished; failed: dev-2-cuda" in out
    experiments = _experiments(committed_repo, dvc_environment)
    assert "dev-1-cpu" in experiments and "dev-2-cuda" not in experiments


# --- the served deployment: schedule, custom runs, the UI -----------------------------------------
DEPLOYMENT = "dividemix/test-nightly"


@pytest.fixture(scope="module")
def served(committed_repo, prefect_api):
    """`dividemix serve` running for the rest of the module: the deployment it serves."""
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dividemix"), "serve", "--repo", str(committed_repo), "--cron", "0 3 * * *",
         "--name", DEPLOYMENT.split("/")[1]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},  # pick runs up within a second, not 10
    )

    async def deployment():
        from prefect import get_client
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                return await client.read_deployment_by_name(DEPLOYMENT)
            except ObjectNotFound:
                return None

    try:
        deadline, found = time.monotonic() + 120, None
        while found is None and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            found = _run(deployment())
            time.sleep(0.5)
        assert found is not None, "no deployment after 120 s"
        yield found
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_serve_creates_a_deployment_with_the_cron_schedule(served, committed_repo):
    assert [s.schedule.cron for s in served.schedules] == ["0 3 * * *"]
    assert all(s.active for s in served.schedules)
    assert served.parameters == {"repo": str(committed_repo)}  # the schedule's runs: no overrides
    # the UI's custom run form: the repository and the overrides (a mapping of dotted keys)
    assert {"repo", "overrides"} <= set(served.parameter_openapi_schema["properties"])


def test_a_custom_run_is_an_experiment_and_leaves_the_workspace_alone(served, committed_repo, dvc_environment):
    from prefect.deployments import run_deployment

    before = (committed_repo / "params.yaml").read_bytes()
    run = run_deployment(DEPLOYMENT, parameters={"overrides": {"train.lambda_u": 5.0}}, timeout=900, poll_interval=1)
    assert run.state.is_completed(), run.state.message
    assert (committed_repo / "params.yaml").read_bytes() == before  # the workspace untouched
    name = run.name  # the experiment is named after the flow run
    data = _experiments(committed_repo, dvc_environment)[name]
    assert data["params"]["params.yaml"]["data"]["train"]["lambda_u"] == 5.0
    assert 0.0 <= data["metrics"]["metrics/eval.json"]["data"]["test_acc_best"] <= 1.0
    by_key = {artifact.key: artifact for artifact in _run(_artifacts(run.id))}
    assert name in by_key["dividemix-experiment"].data and "dvc exp apply" in by_key["dividemix-experiment"].data
    assert "test_acc_best" in by_key["dividemix-experiment-metrics"].data
    assert by_key["dividemix-report"].data.startswith("# DivideMix on digits")
    assert (committed_repo / ".dividemix/experiments" / name / "index.html").is_file()  # the link's target

    bad = run_deployment(DEPLOYMENT, parameters={"overrides": {"noise.rate": 1.5}}, timeout=300, poll_interval=1)
    assert bad.state.is_failed()
    assert "noise.rate: Input should be less than or equal to 1 (got 1.5)" in bad.state.message, bad.state.message
    assert name in _experiments(committed_repo, dvc_environment)  # (and no new experiment for the bad one)


def test_the_ui_offers_a_custom_run_with_the_overrides(served, prefect_api, tmp_path):
    """The deployment's "Custom run" page in headless Chromium: it renders, with the parameters."""
    from browser import CHROMIUM, PNG_SIGNATURE, check_page, keep_screenshot

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make browser`)")
    url = f"{prefect_api.removesuffix('/api')}/deployments/deployment/{served.id}/run"
    dict_choice = "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'dict').click()"
    check = check_page(url, tmp_path / "chrome", ready="document.body.innerText.includes('overrides')",
                       then=(dict_choice,), width=1400)
    assert check.screenshot.startswith(PNG_SIGNATURE)
    assert not [e for e in check.errors if "favicon" not in e], check.errors
    keep_screenshot(check, tmp_path, "prefect-custom-run.png")  # docs/prefect.md shows it
