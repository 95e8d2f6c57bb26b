"""Every check read by `InstanceSources` from a real instance, real folders and real processes,
set up to pass, warn and fail.

Thresholds are forced with HIVE_HEALTH__<CHECK>__WARN/FAIL where a default would need
thousands of files or gigabytes; ages use the `now` every check takes, so no test waits.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import psutil
import pytest
from dagster._daemon.types import DaemonHeartbeat

from hive_pipelines.defs.health.sources import InstanceSources
from hive_pipelines.defs.registry.assets import ASSIGNMENTS
from hive_pipelines.defs.registry.prune import PRUNE_JOB, build_prune_job
from hive_pipelines.health.checks import CheckResult, HealthThresholds, by_check, evaluate
from hive_pipelines.host.circuit import CircuitState
from hive_pipelines.host.inbox import Position, backlog, quarantine
from hive_pipelines.host.tick import HostCursor
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings, get_settings
from hive_pipelines.tags import FLOW_TAG
from hive_pipelines_tests.health import (
    DEV_DAEMON_ARGS,
    daemon_like_process,
    flow_jobs,
    fresh_instance,
    queue_run,
    run_flow,
    save_sensor_cursor,
    thresholds,
    use_settings,
    write_flows,
)

MIB = 1 << 20
TIB = 1 << 40


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """conftest's real SQLite instance, copied from an empty one to skip creating schemas."""
    with fresh_instance(tmp_path / "dagster_home") as real_instance:
        yield real_instance


@dg.op
def step() -> None:
    pass


@dg.job
def plain_job() -> None:
    step()


@dg.op
def explode() -> None:
    raise RuntimeError("not a flow")


@dg.job
def failing_plain_job() -> None:
    explode()


def read(
    instance: dg.DagsterInstance,
    name: str,
    now: float | None = None,
    limits: HealthThresholds | None = None,
) -> CheckResult:
    """One check's result, evaluated as the sensor does, from the current settings."""
    settings = get_settings()
    results = evaluate(
        InstanceSources(instance, settings), limits or settings.health, now or time.time()
    )
    [result] = [r for r in by_check(results) if r.name == name]
    return result


def status_of(instance: dg.DagsterInstance, name: str, now: float | None = None) -> str:
    return read(instance, name, now).status


# -- runs ------------------------------------------------------------------------------------


def test_failure_rate_per_flow_from_real_flow_runs(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_flows(hive_env)
    settings = thresholds(monkeypatch, "failure_rate", 0.25, 0.75)
    settings = use_settings(monkeypatch, health__failure_min_runs=1)
    jobs = flow_jobs(settings)
    outcomes = [
        run_flow(jobs[name], instance).success for name in ("steady", "flaky", "flaky", "broken")
    ]
    assert outcomes == [True, False, True, False]
    assert not failing_plain_job.execute_in_process(instance=instance, raise_on_error=False).success
    halted = instance.create_run_for_job(plain_job, tags={FLOW_TAG: "halted"})
    instance.report_run_canceled(halted)
    now = time.time()

    results = evaluate(InstanceSources(instance, settings), settings.health, now)

    rates = [(r.subject, r.status, r.value) for r in results if r.name == "failure_rate"]
    assert rates == [
        ("broken", "fail", 1.0),
        ("flaky", "warn", 0.5),
        ("halted", "fail", 1.0),  # a canceled run counts as failed
        ("steady", "pass", 0.0),
    ]  # the failed run without a hive/flow tag is no flow's
    combined = read(instance, "failure_rate", now)
    assert (combined.status, combined.value) == ("fail", 1.0)
    assert "flaky: warn, 1 of 2 runs failed in the last 24 h." in combined.message

    too_few = settings.health.model_copy(update={"failure_min_runs": 3})
    judged = read(instance, "failure_rate", now, too_few)
    assert (judged.status, judged.value) == ("pass", 1.0)
    assert "broken: pass, 1 of 1 runs failed in the last 24 h. Too few runs to judge." in (
        judged.message
    )

    later = read(instance, "failure_rate", now + 25 * 3600)
    assert (later.status, later.value) == ("pass", 0.0)
    assert later.message == "No flow run ended in the window."


def test_oldest_queued_run_ages_with_the_run(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    assert read(instance, "oldest_queued_run").value == 0.0
    queue_run(instance, plain_job)
    [record] = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    created = record.create_timestamp.timestamp()

    young = read(instance, "oldest_queued_run", created + 30)
    assert (young.status, young.value) == ("pass", 30.0)
    assert young.message == "The oldest queued run has waited 30 s."
    assert status_of(instance, "oldest_queued_run", created + 600) == "warn"
    assert status_of(instance, "oldest_queued_run", created + 3600) == "fail"

    queue_run(instance, plain_job)  # a newer one does not hide the oldest
    assert read(instance, "oldest_queued_run", created + 3600).value == 3600.0


def test_runs_in_progress_counts_starting_and_started_runs(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    thresholds(monkeypatch, "runs_in_progress", 2, 3)
    queue_run(instance, plain_job)
    plain_job.execute_in_process(instance=instance)  # finished: not in progress
    instance.create_run_for_job(plain_job, status=dg.DagsterRunStatus.STARTED)

    one = read(instance, "runs_in_progress")
    assert (one.status, one.value, one.message) == ("pass", 1.0, "1 run(s) in progress.")

    instance.create_run_for_job(plain_job, status=dg.DagsterRunStatus.STARTING)
    assert status_of(instance, "runs_in_progress") == "warn"

    instance.create_run_for_job(plain_job, status=dg.DagsterRunStatus.STARTED)
    assert read(instance, "runs_in_progress").value == 3.0
    assert status_of(instance, "runs_in_progress") == "fail"


# -- the inbox and the host ---------------------------------------------------------------


def drop(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / name
        path.write_text(name, encoding="utf-8")
        paths.append(path)
        time.sleep(0.005)  # a later inode change time for each
    return paths


def test_inbox_backlog_counts_waiting_events_after_the_host_cursor(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = thresholds(monkeypatch, "inbox_backlog", 3, 5)
    inbox = settings.resolved_inbox_dir

    missing = read(instance, "inbox_backlog")
    assert (missing.status, missing.value) == ("unknown", None)
    assert missing.message == f"Not applicable: the inbox {inbox} does not exist yet"

    first, second = drop(inbox / "steady", "a.jsonl", "b.jsonl")
    drop(inbox / "steady", "c.jsonl.part", ".d.jsonl")  # still being written: no events
    (inbox / "steady" / "nested").mkdir()
    drop(inbox / ".processed" / "steady", "old.jsonl")
    two = read(instance, "inbox_backlog")
    assert (two.status, two.value, two.message) == ("pass", 2.0, "2 event(s) waiting.")

    drop(inbox / "requests", "r1.json")
    assert status_of(instance, "inbox_backlog") == "warn"
    drop(inbox / "flaky", "x.jsonl", "y.jsonl")
    assert (read(instance, "inbox_backlog").value, status_of(instance, "inbox_backlog")) == (
        5.0,
        "fail",
    )

    decided = Position(ctime_ns=second.stat().st_ctime_ns, name=second.name)
    save_sensor_cursor(
        instance, "inbox_sensor", HostCursor(streams={"steady": decided}).model_dump_json()
    )
    after = read(instance, "inbox_backlog")
    assert (after.status, after.value) == ("warn", 3.0)
    assert first.exists()  # waiting files are only read, never moved


def test_inbox_oldest_event_is_the_first_waiting_arrival(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    inbox = settings.resolved_inbox_dir
    inbox.mkdir(parents=True)
    empty = read(instance, "inbox_oldest_event")
    assert (empty.status, empty.value) == ("pass", 0.0)

    oldest, _newer = drop(inbox / "steady", "a.jsonl", "b.jsonl")
    drop(inbox / "requests", "r.json")
    arrived = oldest.stat().st_ctime_ns / 1e9

    result = read(instance, "inbox_oldest_event", arrived + 30)
    assert (result.status, result.value) == ("pass", pytest.approx(30.0, abs=1e-3))
    assert status_of(instance, "inbox_oldest_event", arrived + 600) == "warn"
    assert status_of(instance, "inbox_oldest_event", arrived + 3600) == "fail"

    decided = Position(ctime_ns=oldest.stat().st_ctime_ns, name=oldest.name)
    save_sensor_cursor(
        instance, "inbox_sensor", HostCursor(streams={"steady": decided}).model_dump_json()
    )
    assert (read(instance, "inbox_oldest_event", arrived + 600).value or 0.0) < 600


def test_quarantine_growth_counts_reason_files_of_the_last_hour(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = thresholds(monkeypatch, "quarantine_per_hour", 2, 4)
    inbox = settings.resolved_inbox_dir
    drop(inbox / "steady", *[f"bad-{n}.jsonl" for n in range(5)])
    entries = backlog(inbox, "steady", None, 10).entries

    def quarantine_next() -> Path:
        return quarantine(inbox, entries.pop(0), "invalid", "not JSON lines")

    assert read(instance, "quarantine_growth").value == 0.0
    quarantine_next()
    assert status_of(instance, "quarantine_growth") == "pass"
    first_of_the_hour = quarantine_next()
    result = read(instance, "quarantine_growth")
    assert (result.status, result.value) == ("warn", 2.0)
    assert result.message == "2 event(s) quarantined in the last hour."
    quarantine_next()
    quarantine_next()
    assert status_of(instance, "quarantine_growth") == "fail"

    reason = first_of_the_hour.with_name(first_of_the_hour.name + ".reason.json")
    two_hours_ago = time.time() - 7200
    os.utime(reason, (two_hours_ago, two_hours_ago))
    assert read(instance, "quarantine_growth").value == 3.0


def test_open_circuits_are_read_from_the_inbox_sensor_cursor(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    def circuits(**states: str) -> None:
        cursor = HostCursor(circuits={f: CircuitState(state=s) for f, s in states.items()})
        save_sensor_cursor(instance, "inbox_sensor", cursor.model_dump_json())

    none_saved = read(instance, "open_circuits")
    assert (none_saved.status, none_saved.value, none_saved.message) == ("pass", 0.0, "Open: none.")
    circuits(steady="closed")
    assert status_of(instance, "open_circuits") == "pass"

    circuits(steady="closed", broken="open")
    one = read(instance, "open_circuits")
    assert (one.status, one.value, one.message) == ("warn", 1.0, "Open: broken.")

    circuits(steady="closed", broken="open", flaky="half_open", other="open")
    three = read(instance, "open_circuits")
    assert (three.status, three.value) == ("fail", 3.0)
    assert three.message == "Open: broken, flaky, other."


def test_a_corrupt_host_cursor_makes_its_checks_unknown_with_the_reason(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    settings.resolved_inbox_dir.mkdir(parents=True)
    save_sensor_cursor(instance, "inbox_sensor", "{not json")

    results = by_check(evaluate(InstanceSources(instance, settings), settings.health, time.time()))

    unknown = {r.name: r.message for r in results if r.status == "unknown"}
    for name in ("inbox_backlog", "inbox_oldest_event", "quarantine_growth", "open_circuits"):
        assert unknown[name].startswith("Could not be evaluated: ValidationError:")
    assert len(results) == 14


# -- the registry ------------------------------------------------------------------------


def write_days(store: RegistryStore, *offsets: int) -> None:
    today = datetime.now(UTC).date()
    for offset in offsets:
        day = (today - timedelta(days=offset)).isoformat()
        frame = pd.DataFrame({"run_id": [f"run-{offset}"] * 50, "seconds": range(50)})
        store.write(ASSIGNMENTS, day, frame)


def parquet_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def test_registry_partitions_beyond_the_retention_warn_and_fail_until_pruned(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, registry_retention_days=2)
    settings = thresholds(monkeypatch, "registry_partitions_over_retention", 1, 3)
    store = RegistryStore(settings.resolved_registry_dir)

    assert read(instance, "registry_partitions").value == 0.0  # none beyond; never negative
    write_days(store, 0, 1)
    kept = read(instance, "registry_partitions")
    assert (kept.status, kept.value) == ("pass", 0.0)
    assert kept.message == "2 day(s) stored for a retention of 2."
    write_days(store, 2)
    assert status_of(instance, "registry_partitions") == "warn"
    write_days(store, 3, 4)
    assert (
        read(instance, "registry_partitions").value,
        status_of(instance, "registry_partitions"),
    ) == (3.0, "fail")

    pruned = build_prune_job(settings).execute_in_process(instance=instance)

    assert pruned.success
    assert len(store.days(ASSIGNMENTS)) == 2
    assert status_of(instance, "registry_partitions") == "pass"


def test_registry_size_is_the_bytes_of_its_parquet_files(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RegistryStore(settings.resolved_registry_dir)
    empty = read(instance, "registry_size")
    assert (empty.status, empty.value) == ("pass", 0.0)
    write_days(store, 0, 1, 2)
    (settings.resolved_registry_dir / "notes.txt").write_text("x" * 10_000)
    size = parquet_bytes(settings.resolved_registry_dir)

    thresholds(monkeypatch, "registry_bytes", size + 1, size + 2)
    result = read(instance, "registry_size")
    assert (result.status, result.value) == ("pass", float(size))
    assert result.message == f"The registry holds {size:,} bytes."
    thresholds(monkeypatch, "registry_bytes", size, size + 1)
    assert status_of(instance, "registry_size") == "warn"
    thresholds(monkeypatch, "registry_bytes", size - 1, size)
    assert status_of(instance, "registry_size") == "fail"


def test_last_pruning_is_the_end_of_the_last_successful_prune_run(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    never = read(instance, "last_pruning")
    assert (never.status, never.value) == ("unknown", None)
    assert never.message == "Not applicable: no pruning has succeeded yet."

    run = build_prune_job(settings).execute_in_process(instance=instance)
    [record] = instance.get_run_records(dg.RunsFilter(job_name=PRUNE_JOB))
    assert record.dagster_run.run_id == run.run_id and record.end_time is not None
    ended = record.end_time

    fresh = read(instance, "last_pruning", ended + 60)
    assert (fresh.status, fresh.value) == ("pass", pytest.approx(60.0))
    assert fresh.message == "The last successful pruning ended 0.0 h ago."
    assert status_of(instance, "last_pruning", ended + 36 * 3600) == "warn"
    assert status_of(instance, "last_pruning", ended + 72 * 3600) == "fail"


def test_a_dry_run_pruning_does_not_count_as_pruning(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    # Regression: a dry run, which removes nothing, reset the age of the last pruning.
    dry = {"ops": {"prune_history": {"config": {"dry_run": True}}}}
    assert build_prune_job(settings).execute_in_process(instance=instance, run_config=dry).success

    result = read(instance, "last_pruning")

    assert (result.status, result.value) == ("unknown", None)


# -- storage and disk --------------------------------------------------------------------


def test_storage_size_is_the_bytes_under_the_dagster_storage_folder(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Path(instance.storage_directory())
    (storage / "logs").mkdir(parents=True, exist_ok=True)
    (storage / "logs" / "big.log").write_bytes(b"\0" * (4 * MIB))

    result = read(instance, "storage_size")
    on_disk = sum(p.stat().st_size for p in storage.rglob("*") if p.is_file())
    assert result.value == float(on_disk) >= 4 * MIB
    assert result.status == "pass"  # 10 GiB / 50 GiB by default

    thresholds(monkeypatch, "storage_bytes", 2 * MIB, 64 * MIB)
    assert status_of(instance, "storage_size") == "warn"
    thresholds(monkeypatch, "storage_bytes", 1 * MIB, 2 * MIB)
    failing = read(instance, "storage_size")
    assert failing.status == "fail"
    assert failing.threshold == f"warn >= {MIB:,}, fail >= {2 * MIB:,}"


def test_free_disk_is_the_free_share_of_the_disk_holding_dagster_home(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(instance.root_directory)
    free = usage.free / usage.total
    assert free > 0.05, "the test needs a disk with more than 5% free"
    higher, lower = min(free + 0.05, 1.0), max(free - 0.05, 0.0)

    thresholds(monkeypatch, "free_disk_fraction", lower, 0.0)
    result = read(instance, "free_disk")
    assert (result.status, result.value) == ("pass", pytest.approx(free, abs=0.01))
    thresholds(monkeypatch, "free_disk_fraction", higher, lower)
    assert status_of(instance, "free_disk") == "warn"
    thresholds(monkeypatch, "free_disk_fraction", 1.0, higher)
    failing = read(instance, "free_disk")
    assert failing.status == "fail"
    assert failing.threshold == f"warn <= 1, fail <= {higher:g}"


# -- the daemon --------------------------------------------------------------------------


def test_daemon_heartbeat_is_the_stalest_daemon_type(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    now = time.time()
    missing = read(instance, "daemon_heartbeat", now)
    assert (missing.status, missing.value) == ("unknown", None)
    assert "no daemon heartbeat recorded" in missing.message

    def beat(daemon_type: str, age: float) -> None:
        instance.add_daemon_heartbeat(DaemonHeartbeat(now - age, daemon_type, "daemon-1"))

    beat("SENSOR", 30)
    beat("SCHEDULER", 60)
    fresh = read(instance, "daemon_heartbeat", now)
    assert (fresh.status, fresh.value) == ("pass", pytest.approx(60.0))
    assert fresh.message == "The stalest daemon heartbeat (SCHEDULER) is 60 s old."

    beat("SCHEDULER", 200)
    assert status_of(instance, "daemon_heartbeat", now) == "warn"
    beat("SENSOR", 400)
    stale = read(instance, "daemon_heartbeat", now)
    assert (stale.status, stale.value) == ("fail", pytest.approx(400.0))
    assert "(SENSOR)" in stale.message


def test_daemon_memory_is_the_resident_memory_of_the_daemon_process(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other daemons may run on this host: the reading is the largest, so each status is
    # forced with thresholds around this daemon's memory, which is made unusually large.
    with daemon_like_process(megabytes=300) as daemon:
        rss = daemon.memory_info().rss
        assert rss >= 300 * MIB

        thresholds(monkeypatch, "daemon_rss_bytes", TIB, 2 * TIB)
        result = read(instance, "daemon_memory")
        assert result.status == "pass"
        assert result.value is not None and result.value >= rss * 0.95
        assert result.message.startswith("The daemon's resident memory is ")

        thresholds(monkeypatch, "daemon_rss_bytes", rss // 2, TIB)
        assert status_of(instance, "daemon_memory") == "warn"
        thresholds(monkeypatch, "daemon_rss_bytes", 1, rss // 2)
        assert status_of(instance, "daemon_memory") == "fail"
    assert not psutil.pid_exists(daemon.pid) or daemon.status() == psutil.STATUS_ZOMBIE


def test_daemon_memory_finds_the_daemon_that_dagster_dev_starts(
    settings: HiveSettings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make dev` runs `dagster dev`, which starts the daemon as `python -m dagster._daemon
    run`: that process has no `dagster-daemon` in its command line."""
    with daemon_like_process(megabytes=600, args=DEV_DAEMON_ARGS) as daemon:
        rss = daemon.memory_info().rss
        thresholds(monkeypatch, "daemon_rss_bytes", rss // 2, TIB)

        result = read(instance, "daemon_memory")

    assert result.status == "warn"
    assert result.value is not None and result.value >= rss * 0.95


def test_daemon_memory_without_a_daemon_is_unknown(
    settings: HiveSettings, instance: dg.DagsterInstance
) -> None:
    sources = InstanceSources(instance, settings)
    try:
        sources.daemon_rss()
    except Exception:
        pass
    else:
        pytest.skip("a dagster daemon of another session runs on this host")

    result = read(instance, "daemon_memory")

    assert (result.status, result.value) == ("unknown", None)
    assert result.message == "Not applicable: no dagster-daemon process runs on this host"
