"""The registry's assets written from real flow runs on a real (SQLite) instance.

Every expectation is computed here from Dagster's own records of the runs (run records,
step stats, step events), independently of the registry's code, and compared with the
Parquet rows the registry job wrote.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml

from hive_pipelines.defs.flows.definitions import build_flow_definitions
from hive_pipelines.defs.registry.assets import ASSIGNMENTS, EVENT_ID_TAG, WORKER_DAYS
from hive_pipelines.defs.registry.definitions import build_registry_definitions
from hive_pipelines.defs.registry.prune import REGISTRY_JOB
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings, get_settings

FLOW_JOB_MODULE = "hive_pipelines.defs.flows.definitions"
MULTIPROCESS: dict[str, Any] = {
    "execution": {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}
}
# Timestamps are kept to the microsecond; Dagster's are floats.
CLOCK_TOLERANCE = pd.Timedelta(microseconds=2)


def write_flow(folder: Path, name: str, nodes: list[dict[str, Any]]) -> None:
    document = {"name": name, "nodes": nodes}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def three_node_flow(folder: Path, name: str) -> None:
    """Two sources and a node after one of them: `rows -> sorted`, and `other`."""
    write_flow(
        folder,
        name,
        [
            {"id": "rows", "transform": "make_rows", "params": {"rows": 4}},
            {"id": "other", "transform": "make_rows", "params": {"rows": 2}},
            {
                "id": "sorted",
                "transform": "sort_rows",
                "upstream": ["rows"],
                "params": {"by": ["n"], "descending": True},
            },
        ],
    )


def counted_node(node_id: str, counter: Path, fail_times: int, max_retries: int) -> dict:
    return {
        "id": node_id,
        "transform": "fail_then_succeed",
        "upstream": ["source"],
        "params": {"counter_file": str(counter), "fail_times": fail_times},
        "retry": {"max_retries": max_retries, "delay_seconds": 0},
    }


def source_node() -> dict[str, Any]:
    return {"id": "source", "transform": "make_rows", "params": {"rows": 3}}


def run_in_process(
    instance: dg.DagsterInstance, flow: str, event_id: str | None = None
) -> dg.ExecuteInProcessResult:
    get_settings.cache_clear()
    job = build_flow_definitions(get_settings()).resolve_job_def(flow)
    tags = {EVENT_ID_TAG: event_id} if event_id else None
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def run_multiprocess(instance: dg.DagsterInstance, flow: str, event_id: str | None) -> str:
    """Each node in a step process of its own, as a run worker would launch it."""
    get_settings.cache_clear()
    job = dg.build_reconstructable_job(FLOW_JOB_MODULE, "build_flow_job_by_name", (flow,))
    tags = {EVENT_ID_TAG: event_id} if event_id else None
    with dg.execute_job(
        job, instance=instance, run_config=MULTIPROCESS, tags=tags, raise_on_error=False
    ) as result:
        assert result.success
        return result.run_id


def write_registry_day(
    instance: dg.DagsterInstance, settings: HiveSettings, day: str
) -> dg.ExecuteInProcessResult:
    job = build_registry_definitions(settings).resolve_job_def(REGISTRY_JOB)
    result = job.execute_in_process(instance=instance, partition_key=day)
    assert result.success
    return result


def end_day(instance: dg.DagsterInstance, run_id: str) -> str:
    """The UTC day a run ended on: its registry partition."""
    record = instance.get_run_record_by_id(run_id)
    assert record is not None and record.end_time is not None
    return datetime.fromtimestamp(record.end_time, UTC).date().isoformat()


def step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """The process that started each step, as Dagster recorded it."""
    pids = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START):
        event = entry.dagster_event
        assert event is not None and event.step_key is not None and event.pid is not None
        pids[event.step_key] = event.pid
    return pids


def attempt_seconds(stat: Any) -> float:
    """The time between each attempt's start and end, as Dagster's step stats give them."""
    total = 0.0
    for attempt in stat.attempts_list:
        assert attempt.start_time is not None and attempt.end_time is not None
        total += attempt.end_time - attempt.start_time
    return total


def expected_rows(
    instance: dg.DagsterInstance, run_id: str, flow: str, event_id: str | None
) -> pd.DataFrame:
    """One row per step from the instance's step stats, without the registry's code."""
    pids = step_pids(instance, run_id)
    rows = []
    for stat in instance.get_run_step_stats(run_id):
        assert stat.status is not None and stat.start_time is not None
        rows.append(
            {
                "flow": flow,
                "node": stat.step_key,
                "run_id": run_id,
                "event_id": event_id,
                "worker": f"{socket.gethostname()}:{pids[stat.step_key]}",
                "attempts": stat.attempts,
                "outcome": stat.status.value.lower(),
                "started_at": pd.Timestamp(stat.start_time, unit="s", tz="UTC"),
                "finished_at": pd.Timestamp(stat.end_time, unit="s", tz="UTC"),
                "busy_seconds": attempt_seconds(stat),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class RecordedDay:
    """Flow runs on a real instance and the registry day written from them."""

    instance: dg.DagsterInstance
    settings: HiveSettings
    day: str
    runs: dict[str, str]  # flow -> run id
    rows: pd.DataFrame
    summary: pd.DataFrame
    counters: Path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedDay]:
    """Three runs, written once and shared by the tests that only read them (runs cost
    seconds each): `pair` (two nodes, each in its own step process, launched with an event
    id), `orders` (three nodes in this process, started by hand) and `mixed` (a node retried
    once, a node that fails every attempt)."""
    tmp = tmp_path_factory.mktemp("recorded")
    flows, home, counters = tmp / "flows", tmp / "dagster_home", tmp / "counters"
    for folder in (flows, home, counters):
        folder.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HIVE_VAR_DIR", str(tmp / "var"))
        env.setenv("HIVE_FLOWS_DIR", str(flows))
        env.setenv("HIVE_TRANSFORM_MODULES", '["hive_pipelines_tests.support_transforms"]')
        get_settings.cache_clear()
        settings = get_settings()
        write_flow(
            flows,
            "pair",
            [
                {"id": "left", "transform": "make_rows", "params": {"rows": 4}},
                {"id": "right", "transform": "make_rows", "params": {"rows": 2}},
            ],
        )
        three_node_flow(flows, "orders")
        write_flow(
            flows,
            "mixed",
            [
                source_node(),
                counted_node("flaky", counters / "flaky.count", 1, max_retries=2),
                counted_node("broken", counters / "broken.count", 99, max_retries=2),
            ],
        )
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            # A forkserver started now, so step processes see these HIVE_ variables.
            multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
            try:
                pair = run_multiprocess(instance, "pair", event_id="evt-0001")
            finally:
                multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
            orders = run_in_process(instance, "orders")
            mixed = run_in_process(instance, "mixed", event_id="evt-0002")
            assert orders.success and not mixed.success
            runs = {"pair": pair, "orders": orders.run_id, "mixed": mixed.run_id}
            day = end_day(instance, pair)
            assert {end_day(instance, run_id) for run_id in runs.values()} == {day}

            write_registry_day(instance, settings, day)
            store = RegistryStore(settings.resolved_registry_dir)
            yield RecordedDay(
                instance=instance,
                settings=settings,
                day=day,
                runs=runs,
                rows=store.read(ASSIGNMENTS, day),
                summary=store.read(WORKER_DAYS, day),
                counters=counters,
            )
    get_settings.cache_clear()


def test_partition_has_one_row_per_node_as_the_instance_recorded_it(
    recorded: RecordedDay,
) -> None:
    instance, runs, rows = recorded.instance, recorded.runs, recorded.rows
    expected = pd.concat(
        [
            expected_rows(instance, runs["pair"], "pair", "evt-0001"),
            expected_rows(instance, runs["orders"], "orders", None),
            expected_rows(instance, runs["mixed"], "mixed", "evt-0002"),
        ]
    )
    expected = expected.sort_values(["run_id", "node"]).reset_index(drop=True)

    assert len(rows) == len(expected) == 8
    assert rows["day"].tolist() == [recorded.day] * 8
    for column in ("flow", "node", "run_id", "worker", "attempts", "outcome"):
        assert rows[column].tolist() == expected[column].tolist(), column
    assert rows["event_id"].astype(object).where(rows["event_id"].notna(), None).tolist() == (
        expected["event_id"].tolist()
    )
    for column in ("started_at", "finished_at"):
        gaps = (rows[column] - expected[column]).abs()
        assert (gaps <= CLOCK_TOLERANCE).all(), column
    assert rows["busy_seconds"].to_numpy() == pytest.approx(
        expected["busy_seconds"].to_numpy(), abs=1e-5
    )
    # The worker is host:pid of the process that ran the op. In the multiprocess run each
    # node had a step process of its own, where Dagster's executor also says it assigned it
    # before it started; the in-process runs ran every op in this test's process.
    pair = rows[rows["flow"] == "pair"]
    assert pair["node"].tolist() == ["left", "right"]
    assert pair["worker"].nunique() == 2
    assert f"{socket.gethostname()}:{os.getpid()}" not in set(pair["worker"])
    assert (pair["assigned_at"] < pair["started_at"]).all()
    in_process = rows[rows["flow"] != "pair"]
    assert set(in_process["worker"]) == {f"{socket.gethostname()}:{os.getpid()}"}
    assert (in_process["assigned_at"] == in_process["started_at"]).all()


def test_writing_a_partition_twice_gives_the_same_rows(recorded: RecordedDay) -> None:
    write_registry_day(recorded.instance, recorded.settings, recorded.day)
    store = RegistryStore(recorded.settings.resolved_registry_dir)

    pd.testing.assert_frame_equal(store.read(ASSIGNMENTS, recorded.day), recorded.rows)
    pd.testing.assert_frame_equal(store.read(WORKER_DAYS, recorded.day), recorded.summary)


def test_retried_node_and_node_that_always_fails(recorded: RecordedDay) -> None:
    rows = recorded.rows.set_index(["flow", "node"])

    retried = rows.loc[("mixed", "flaky")]
    assert (recorded.counters / "flaky.count").read_text() == "2"
    assert retried["attempts"] == 2
    assert retried["outcome"] == "success"
    assert pd.isna(retried["error_class"]) and pd.isna(retried["error_message"])

    failed = rows.loc[("mixed", "broken")]
    assert (recorded.counters / "broken.count").read_text() == "3"
    assert failed["run_id"] == recorded.runs["mixed"]
    assert failed["event_id"] == "evt-0002"
    assert failed["attempts"] == 3  # max_retries 2, plus the first attempt
    assert failed["outcome"] == "failure"
    assert failed["error_class"] == "RuntimeError"
    assert failed["error_message"] == (
        "The node 'broken' of flow 'mixed' failed in transform 'fail_then_succeed': "
        "RuntimeError: planned failure on attempt 3"
    )
    assert pd.notna(failed["finished_at"])

    others = rows.drop(index=[("mixed", "flaky"), ("mixed", "broken")])
    assert others["attempts"].tolist() == [1] * 6
    assert others["outcome"].tolist() == ["success"] * 6
    assert others["error_class"].isna().all() and others["error_message"].isna().all()


def test_worker_summary_matches_the_task_rows(recorded: RecordedDay) -> None:
    rows, summary = recorded.rows, recorded.summary

    # Independently: plain Python over the task rows, one worker at a time.
    records = rows.to_dict("records")
    expected = []
    for worker in sorted({r["worker"] for r in records}):
        mine = [r for r in records if r["worker"] == worker]
        expected.append(
            {
                "day": recorded.day,
                "worker": worker,
                "tasks": len(mine),
                "failures": sum(1 for r in mine if r["outcome"] == "failure"),
                "retries": sum(r["attempts"] - 1 for r in mine),
                "busy_seconds": sum(r["busy_seconds"] for r in mine),
            }
        )

    # Two step processes with a node each; this process with the six in-process nodes,
    # among them one retried once and one that failed after two retries.
    assert len(summary) == 3
    here = summary.set_index("worker").loc[f"{socket.gethostname()}:{os.getpid()}"]
    assert (here["tasks"], here["failures"], here["retries"]) == (6, 1, 3)
    for column in ("day", "worker", "tasks", "failures", "retries"):
        assert summary[column].tolist() == [e[column] for e in expected], column
    assert summary["busy_seconds"].tolist() == pytest.approx(
        [e["busy_seconds"] for e in expected], abs=1e-9
    )


def test_registry_sensor_requests_the_day_of_a_finished_run_then_skips(
    hive_env: Path, settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    three_node_flow(hive_env, "orders")
    run = run_in_process(instance, "orders")
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None
    day = end_day(instance, run.run_id)
    updated = record.update_timestamp.timestamp()
    defs = build_registry_definitions(settings)
    sensor = defs.resolve_sensor_def("registry_sensor")

    def tick(cursor: str | None) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
        )
        return sensor.evaluate_tick(context)

    first = tick(None)

    [request] = first.run_requests or []
    assert request.partition_key == day
    assert request.job_name in (None, REGISTRY_JOB)
    assert request.run_key == f"{day}@{updated:.6f}"
    assert first.skip_message is None
    # The cursor moved to the run's update time (and names the run it has seen there).
    assert first.cursor == f"{updated} {run.run_id}"

    second = tick(first.cursor)

    assert second.run_requests == []
    assert second.skip_message is not None
    assert second.skip_message.startswith("No flow run ended since")
    assert second.cursor == first.cursor

    # The registry run the request started ends too: it moves the cursor, requests nothing.
    registry_run = write_registry_day(instance, settings, day)
    third = tick(second.cursor)

    assert third.run_requests == []
    assert third.skip_message is not None
    assert third.cursor is not None and third.cursor != second.cursor
    registry_record = instance.get_run_record_by_id(registry_run.run_id)
    assert registry_record is not None
    assert float(third.cursor.split()[0]) == registry_record.update_timestamp.timestamp()
