"""Running compiled flows on a real instance: retries, hard timeouts, nothing left behind.

Jobs are rebuilt by name (`build_reconstructable_job`), as the multiprocess executor and a
run worker would; the variables set by `hive_env` tell every process where the flows are.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psutil
import pytest
import yaml

from hive_pipelines.flowgraph.tables import read_table
from hive_pipelines.settings import get_settings

FLOW_JOB_MODULE = "hive_pipelines.defs.flows.definitions"
MULTIPROCESS: dict[str, Any] = {
    "execution": {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}
}
# Processes the multiprocess executor leaves running by design; their descendants still count.
SHARED_HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")
# A bound on the whole run, not a benchmark: 1 s timeouts plus generous slack for slow hosts.
MAX_RUN_WALL_SECONDS = 30.0


def write_flow(folder: Path, name: str, nodes: list[dict[str, Any]], **fields: Any) -> None:
    document = {"name": name, **fields, "nodes": nodes}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def execute(
    instance: dg.DagsterInstance, flow: str, run_config: dict[str, Any] | None = None
) -> tuple[bool, str, float]:
    """Run a flow by name on the instance; its success, run id and wall time."""
    get_settings.cache_clear()
    job = dg.build_reconstructable_job(FLOW_JOB_MODULE, "build_flow_job_by_name", (flow,))
    started = time.monotonic()
    with dg.execute_job(
        job, instance=instance, run_config=run_config or {}, raise_on_error=False
    ) as result:
        return result.success, result.run_id, time.monotonic() - started


def step_events(
    instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType, step: str
) -> list[dg.EventLogEntry]:
    return [
        entry
        for entry in instance.all_logs(run_id, of_type=kind)
        if entry.dagster_event is not None and entry.dagster_event.step_key == step
    ]


def failure_text(entry: dg.EventLogEntry) -> str:
    """Every message a step failure or retry request carries, causes included."""
    event = entry.dagster_event
    assert event is not None
    data: Any = event.event_specific_data
    parts = []
    error = data.error
    while error is not None:
        parts.append(error.message)
        error = error.cause
    user_data = getattr(data, "user_failure_data", None)
    if user_data is not None and user_data.description:
        parts.append(user_data.description)
    return "\n".join(parts)


def node_output(instance: dg.DagsterInstance, run_id: str, node: str) -> pd.DataFrame:
    return read_table(Path(instance.storage_directory()) / "hive" / run_id / f"{node}.parquet")


def _descendants() -> dict[tuple[int, float], psutil.Process]:
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            found[(proc.pid, proc.create_time())] = proc
        except psutil.NoSuchProcess:
            continue
    return found


def _leaked(before: set[tuple[int, float]]) -> list[str]:
    leaked = []
    for key, proc in _descendants().items():
        if key in before:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        if not any(helper in command for helper in SHARED_HELPERS):
            leaked.append(f"{proc.pid}: {command}")
    return leaked


@contextmanager
def no_leaks(tmp_path: Path) -> Iterator[None]:
    """After the block, no process it started still runs and no partial file remains."""
    before = set(_descendants())
    yield
    deadline = time.monotonic() + 10
    while _leaked(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leaked(before) == []
    assert list(tmp_path.rglob("*.partial")) == []


@pytest.fixture
def fresh_forkserver() -> Iterator[None]:
    """A forkserver started within this test, so step processes see its HIVE_ variables.

    Processes forked by a forkserver inherit the environment it was started with; one left
    over from an earlier test would point step processes at that test's flows folder.
    """
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
    yield
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


def source_node() -> dict[str, Any]:
    return {"id": "source", "transform": "make_rows", "params": {"rows": 3}}


def test_transform_that_fails_once_succeeds_through_its_retry(
    hive_env: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    counter = tmp_path / "flaky.count"
    flaky = {
        "id": "flaky",
        "transform": "fail_then_succeed",
        "upstream": ["source"],
        "params": {"counter_file": str(counter), "fail_times": 1},
        "retry": {"max_retries": 2, "delay_seconds": 0},
    }
    write_flow(hive_env, "flaky_flow", [source_node(), flaky])

    with no_leaks(tmp_path):
        success, run_id, _ = execute(instance, "flaky_flow")

    assert success
    assert counter.read_text() == "2"
    kinds = dg.DagsterEventType
    assert len(step_events(instance, run_id, kinds.STEP_UP_FOR_RETRY, "flaky")) == 1
    assert len(step_events(instance, run_id, kinds.STEP_RESTARTED, "flaky")) == 1
    assert len(step_events(instance, run_id, kinds.STEP_SUCCESS, "flaky")) == 1
    assert step_events(instance, run_id, kinds.STEP_FAILURE, "flaky") == []
    assert step_events(instance, run_id, kinds.STEP_UP_FOR_RETRY, "source") == []
    [retry] = step_events(instance, run_id, kinds.STEP_UP_FOR_RETRY, "flaky")
    assert (
        "The node 'flaky' of flow 'flaky_flow' failed in transform 'fail_then_succeed': "
        "RuntimeError: planned failure on attempt 1" in failure_text(retry)
    )
    assert node_output(instance, run_id, "flaky")["attempt"].tolist() == [2]
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert run.status == dg.DagsterRunStatus.SUCCESS


def timeout_message(flow: str, node: str = "stuck") -> str:
    return (
        f"The node {node!r} of flow {flow!r} (transform 'hang') ran past its timeout of 1 s "
        "and was stopped."
    )


def hang_flow(folder: Path, name: str, how: str, counter: Path, hang_times: int) -> None:
    stuck = {
        "id": "stuck",
        "transform": "hang",
        "upstream": ["source"],
        "params": {"how": how, "counter_file": str(counter), "hang_times": hang_times},
        "timeout_seconds": 1,
        "retry": {"max_retries": 1, "delay_seconds": 0},
    }
    write_flow(folder, name, [source_node(), stuck])


def assert_stopped_then_retried(
    instance: dg.DagsterInstance, run_id: str, flow: str, counter: Path
) -> None:
    kinds = dg.DagsterEventType
    assert counter.read_text() == "2"
    [retry] = step_events(instance, run_id, kinds.STEP_UP_FOR_RETRY, "stuck")
    assert timeout_message(flow) in failure_text(retry)
    assert len(step_events(instance, run_id, kinds.STEP_RESTARTED, "stuck")) == 1
    assert step_events(instance, run_id, kinds.STEP_FAILURE, "stuck") == []
    assert node_output(instance, run_id, "stuck")["attempt"].tolist() == [2]


def assert_stopped_every_attempt(
    instance: dg.DagsterInstance, run_id: str, flow: str, counter: Path
) -> None:
    kinds = dg.DagsterEventType
    assert counter.read_text() == "2"  # max_retries 1: two attempts, both stopped
    [retry] = step_events(instance, run_id, kinds.STEP_UP_FOR_RETRY, "stuck")
    assert timeout_message(flow) in failure_text(retry)
    [failure] = step_events(instance, run_id, kinds.STEP_FAILURE, "stuck")
    assert timeout_message(flow) in failure_text(failure)
    assert step_events(instance, run_id, kinds.STEP_SUCCESS, "stuck") == []
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert run.status == dg.DagsterRunStatus.FAILURE


HOWS = ["loop", "sleep", "blocking_read"]


@pytest.mark.parametrize("how", HOWS)
def test_hung_transform_is_stopped_then_retried(
    hive_env: Path, tmp_path: Path, instance: dg.DagsterInstance, how: str
) -> None:
    counter = tmp_path / "stuck.count"
    flow = f"hang_{how}"
    hang_flow(hive_env, flow, how, counter, hang_times=1)

    with no_leaks(tmp_path):
        success, run_id, seconds = execute(instance, flow)

    assert success
    assert seconds < MAX_RUN_WALL_SECONDS
    assert_stopped_then_retried(instance, run_id, flow, counter)


def test_transform_that_always_hangs_fails_after_every_attempt(
    hive_env: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    counter = tmp_path / "stuck.count"
    hang_flow(hive_env, "hang_forever", "sleep", counter, hang_times=1_000_000)

    with no_leaks(tmp_path):
        success, run_id, seconds = execute(instance, "hang_forever")

    assert not success
    assert seconds < MAX_RUN_WALL_SECONDS
    assert_stopped_every_attempt(instance, run_id, "hang_forever", counter)


@pytest.mark.parametrize("how", HOWS)
def test_hung_transform_is_stopped_then_retried_multiprocess(
    hive_env: Path,
    tmp_path: Path,
    instance: dg.DagsterInstance,
    fresh_forkserver: None,
    how: str,
) -> None:
    counter = tmp_path / "stuck.count"
    flow = f"hang_mp_{how}"
    hang_flow(hive_env, flow, how, counter, hang_times=1)

    with no_leaks(tmp_path):
        success, run_id, seconds = execute(instance, flow, MULTIPROCESS)

    assert success
    assert seconds < MAX_RUN_WALL_SECONDS
    assert_stopped_then_retried(instance, run_id, flow, counter)
    # Each attempt ran in a step process of its own, not in the test process.
    starts = step_events(instance, run_id, dg.DagsterEventType.STEP_START, "stuck")
    restarts = step_events(instance, run_id, dg.DagsterEventType.STEP_RESTARTED, "stuck")
    pids = {entry.dagster_event.pid for entry in starts + restarts if entry.dagster_event}
    assert len(pids) == 2
    assert os.getpid() not in pids


def test_transform_that_always_hangs_fails_multiprocess(
    hive_env: Path,
    tmp_path: Path,
    instance: dg.DagsterInstance,
    fresh_forkserver: None,
) -> None:
    counter = tmp_path / "stuck.count"
    hang_flow(hive_env, "hang_mp_forever", "blocking_read", counter, hang_times=1_000_000)

    with no_leaks(tmp_path):
        success, run_id, seconds = execute(instance, "hang_mp_forever", MULTIPROCESS)

    assert not success
    assert seconds < MAX_RUN_WALL_SECONDS
    assert_stopped_every_attempt(instance, run_id, "hang_mp_forever", counter)
