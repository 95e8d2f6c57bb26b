"""Pruning registry days and Dagster's run history, on a clock the tests control.

Registry days are real Parquet files written with `RegistryStore`; runs are real runs on a
real (SQLite) instance. "Old" runs are made by pruning with a `now` in the future rather
than by faking their timestamps.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.utils import make_new_run_id

from hive_pipelines.defs.flows.definitions import build_flow_definitions
from hive_pipelines.defs.registry.assets import ASSIGNMENTS, WORKER_DAYS
from hive_pipelines.defs.registry.definitions import build_registry_definitions
from hive_pipelines.defs.registry.prune import PRUNE_JOB, REGISTRY_JOB, PruneReport, prune
from hive_pipelines.registry.assignments import day_of
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings, get_settings

# A fixed clock: noon UTC on 2026-03-15, and the 400 days ending on it.
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC).timestamp()
DAYS = [(date(2026, 3, 15) - timedelta(days=n)).isoformat() for n in range(399, -1, -1)]
OLDEST_370, NEWEST_30 = DAYS[:370], DAYS[370:]
DAY_SECONDS = 86_400
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: object) -> HiveSettings:
    """The settings of this process with some HIVE_ variables set."""
    for name, value in env.items():
        monkeypatch.setenv(f"HIVE_{name.upper()}", str(value))
    get_settings.cache_clear()
    return get_settings()


def small_frame(day: str, rows: int = 2) -> pd.DataFrame:
    return pd.DataFrame({"day": [day] * rows, "worker": [f"w{n}" for n in range(rows)]})


@pytest.fixture(scope="module")
def four_hundred_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both registry assets, one small file a day for the 400 days ending at NOW; written
    once, copied by each test that prunes them."""
    root = tmp_path_factory.mktemp("registry_template")
    store = RegistryStore(root)
    for day in DAYS:
        store.write(ASSIGNMENTS, day, small_frame(day))
        store.write(WORKER_DAYS, day, small_frame(day, rows=1))
    return root


@pytest.fixture
def store(four_hundred_days: Path, settings: HiveSettings) -> RegistryStore:
    """The 400 days in this test's registry folder."""
    shutil.copytree(four_hundred_days, settings.resolved_registry_dir)
    return RegistryStore(settings.resolved_registry_dir)


def assert_kept(store: RegistryStore, days: list[str]) -> None:
    assert store.days(ASSIGNMENTS) == days
    assert store.days(WORKER_DAYS) == days


def test_prune_removes_exactly_the_days_past_retention(
    store: RegistryStore, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, registry_retention_days=30)
    assert_kept(store, DAYS)

    report = prune(instance, settings, now=NOW)

    assert report.dry_run is False
    assert report.partitions == OLDEST_370
    assert set(report.partitions) == set(DAYS) - set(NEWEST_30)
    assert report.missing_files == 0
    assert_kept(store, NEWEST_30)
    assert NEWEST_30[0] == "2026-02-14" and NEWEST_30[-1] == "2026-03-15"
    # The kept files are untouched.
    pd.testing.assert_frame_equal(store.read(ASSIGNMENTS, NEWEST_30[0]), small_frame(NEWEST_30[0]))


def test_prune_dry_run_reports_the_same_days_and_removes_nothing(
    store: RegistryStore, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, registry_retention_days=30)

    report = prune(instance, settings, now=NOW, dry_run=True)

    assert report.dry_run is True
    assert report.partitions == OLDEST_370
    assert report.missing_files == 0
    assert_kept(store, DAYS)


def test_interrupted_pruning_finishes_on_the_next_runs(
    store: RegistryStore, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, registry_retention_days=30, prune_max_per_run=100)

    reports: list[PruneReport] = []
    while not reports or reports[-1].partitions:
        reports.append(prune(instance, settings, now=NOW))
        assert len(reports) <= 5

    assert [len(r.partitions) for r in reports] == [100, 100, 100, 70, 0]
    assert [day for r in reports for day in r.partitions] == OLDEST_370
    assert_kept(store, NEWEST_30)


def test_partition_whose_file_is_already_gone_is_counted_not_fatal(
    store: RegistryStore, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 390 days kept, so the 10 oldest expire (pruning 370 days is covered above).
    settings = settings_with(monkeypatch, registry_retention_days=390)
    half_gone, all_gone = DAYS[5], DAYS[6]
    store.path(WORKER_DAYS, half_gone).unlink()
    store.path(ASSIGNMENTS, all_gone).unlink()
    store.path(WORKER_DAYS, all_gone).unlink()

    report = prune(instance, settings, now=NOW)

    # A day with one file left is still a stored day; a day with none is not seen at all.
    assert report.partitions == [day for day in DAYS[:10] if day != all_gone]
    assert report.missing_files == 1
    assert_kept(store, DAYS[10:])
    # Run again: nothing left to prune, nothing missing.
    again = prune(instance, settings, now=NOW)
    assert (again.partitions, again.missing_files) == ([], 0)


# Run history.


@dg.op
def noop() -> int:
    return 1


@dg.job
def tiny() -> None:
    noop()


def write_flow(folder: Path, name: str, nodes: list[dict[str, Any]]) -> None:
    document = {"name": name, "nodes": nodes}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def node_output_folder(instance: dg.DagsterInstance, run_id: str) -> Path:
    return Path(instance.storage_directory()) / "hive" / run_id


def in_flight_runs(
    instance: dg.DagsterInstance, job_name: str = "tiny", tags: dict[str, str] | None = None
) -> dict[str, dg.DagsterRunStatus]:
    """One run in each status of a run that is waiting or running."""
    # A queued run names the code it will be launched from, as one the host queued would.
    code = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("hive_pipelines"), "__repository__")
    runs = {}
    for status in IN_FLIGHT:
        run = dg.DagsterRun(
            job_name=job_name,
            run_id=make_new_run_id(),
            status=status,
            tags=tags,
            remote_job_origin=code.get_job_origin(job_name),
        )
        instance.add_run(run)
        stored = instance.get_run_by_id(run.run_id)
        assert stored is not None and stored.status == status
        runs[run.run_id] = status
    return runs


def test_run_history_pruning_removes_old_finished_runs_and_leaves_in_flight_ones(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, run_retention_days=30, registry_retention_days=30)
    write_flow(hive_env, "good", [{"id": "rows", "transform": "make_rows"}])
    write_flow(
        hive_env,
        "bad",
        [
            {"id": "rows", "transform": "make_rows"},
            {
                "id": "dies",
                "transform": "die",
                "upstream": ["rows"],
                "params": {"how": "exit"},
                "retry": {"max_retries": 0},
            },
        ],
    )
    jobs = build_flow_definitions(settings)
    finished = [
        jobs.resolve_job_def(flow).execute_in_process(instance=instance, raise_on_error=False)
        for flow in ("good", "bad")
    ]
    assert [result.success for result in finished] == [True, False]
    finished_ids = [result.run_id for result in finished]
    for run_id in finished_ids:
        assert node_output_folder(instance, run_id).is_dir()
        assert instance.all_logs(run_id) != []
    waiting = in_flight_runs(instance)

    # 29 days from now, every run is 29 days old: within a retention of 30.
    assert prune(instance, settings, now=time.time() + 29 * DAY_SECONDS).runs == []
    assert {run.run_id for run in instance.get_runs()} == set(finished_ids) | set(waiting)

    # 40 days from now, every run is 40 days old: past a retention of 30.
    report = prune(instance, settings, now=time.time() + 40 * DAY_SECONDS)

    assert sorted(report.runs) == sorted(finished_ids)
    assert report.node_output_folders == 2
    for run_id in finished_ids:
        assert instance.get_run_by_id(run_id) is None
        assert instance.all_logs(run_id) == []
        assert not node_output_folder(instance, run_id).exists()
    for run_id, status in waiting.items():
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == status
    assert {run.run_id for run in instance.get_runs()} == set(waiting)

    # Nothing left to prune: a second pruning removes nothing and does not fail.
    again = prune(instance, settings, now=time.time() + 40 * DAY_SECONDS)
    assert again.runs == [] and again.node_output_folders == 0


def test_run_pruning_in_batches_dry_run_and_interrupted(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, run_retention_days=30, prune_batch_size=1)
    finished = [tiny.execute_in_process(instance=instance).run_id for _ in range(3)]
    waiting = in_flight_runs(instance)
    later = time.time() + 40 * DAY_SECONDS

    dry = prune(instance, settings, now=later, dry_run=True)

    assert dry.dry_run is True
    assert sorted(dry.runs) == sorted(finished)
    assert {run.run_id for run in instance.get_runs()} == set(finished) | set(waiting)

    # At most 2 runs per pruning: an interrupted pruning, finished by the next ones.
    capped = settings_with(monkeypatch, prune_max_per_run=2)
    removed = [prune(instance, capped, now=later).runs for _ in range(3)]

    assert [len(runs) for runs in removed] == [2, 1, 0]
    assert sorted(removed[0] + removed[1]) == sorted(finished)
    # Oldest first, as the dry run listed them.
    assert removed[0] + removed[1] == dry.runs
    assert {run.run_id for run in instance.get_runs()} == set(waiting)


def test_pruned_registry_day_loses_its_materializations_but_not_in_flight_runs(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, registry_retention_days=30, run_retention_days=365)
    defs = build_registry_definitions(settings)
    today = day_of(time.time())
    written = defs.resolve_job_def(REGISTRY_JOB).execute_in_process(
        instance=instance, partition_key=today
    )
    assert written.success
    key = dg.AssetKey(ASSIGNMENTS)
    assert instance.get_materialized_partitions(key) == {today}
    assert len(instance.fetch_materializations(key, limit=10).records) == 1
    # Registry runs of the same day still waiting or running: pruning leaves them alone.
    waiting = in_flight_runs(instance, REGISTRY_JOB, {"dagster/partition": today})
    store = RegistryStore(settings.resolved_registry_dir)
    assert store.days(ASSIGNMENTS) == store.days(WORKER_DAYS) == [today]

    # 40 days on, today is past a registry retention of 30, runs are within 365.
    report = prune(instance, settings, now=time.time() + 40 * DAY_SECONDS)

    assert report.partitions == [today]
    assert report.registry_runs == 1
    assert report.runs == []
    assert store.days(ASSIGNMENTS) == store.days(WORKER_DAYS) == []
    assert instance.get_run_by_id(written.run_id) is None
    assert instance.get_materialized_partitions(key) == set()
    assert instance.fetch_materializations(key, limit=10).records == []
    for run_id, status in waiting.items():
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == status


def output_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    [entry] = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
    assert entry.dagster_event is not None
    metadata = entry.dagster_event.event_specific_data.metadata  # type: ignore[union-attr]
    return {name: value.value for name, value in metadata.items()}


def test_prune_job_records_what_it_removed_on_its_run(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_with(monkeypatch, registry_retention_days=30)
    store = RegistryStore(settings.resolved_registry_dir)
    today = date.fromisoformat(day_of(time.time()))
    days = sorted((today - timedelta(days=n)).isoformat() for n in range(40))
    for day in days:
        store.write(ASSIGNMENTS, day, small_frame(day))
        store.write(WORKER_DAYS, day, small_frame(day, rows=1))
    expired, kept = days[:10], days[10:]
    defs = build_registry_definitions(settings)
    job = defs.resolve_job_def(PRUNE_JOB)
    dry_config = {"ops": {"prune_history": {"config": {"dry_run": True}}}}

    dry = job.execute_in_process(instance=instance, run_config=dry_config)
    assert dry.success
    assert_kept(store, days)
    real = job.execute_in_process(instance=instance)
    assert real.success
    assert_kept(store, kept)

    dry_meta = output_metadata(instance, dry.run_id)
    real_meta = output_metadata(instance, real.run_id)
    assert dry_meta["dry_run"] is True
    assert real_meta["dry_run"] is False
    for meta in (dry_meta, real_meta):
        assert meta["partitions_removed"] == 10
        assert meta["first_partitions"] == expired
        # Every run is younger than a day: none is past any run retention.
        assert meta["runs_removed"] == 0
        assert meta["partition_files_already_gone"] == 0
    assert dry.output_for_node("prune_history") == real.output_for_node("prune_history") == 10
    schedule = defs.resolve_schedule_def("prune_schedule")
    assert schedule.job_name == PRUNE_JOB
    assert schedule.cron_schedule == settings.prune_cron


def test_run_retention_keeps_the_newest_registry_run_of_a_day_still_kept(
    hive_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: with runs kept for less time than registry days, run pruning deleted the
    # registry run that held a kept day's materialization record; older runs of the same
    # day, superseded, may go.
    settings = settings_with(monkeypatch, registry_retention_days=400, run_retention_days=30)
    job = build_registry_definitions(settings).resolve_job_def(REGISTRY_JOB)
    today = day_of(time.time())
    older = job.execute_in_process(instance=instance, partition_key=today)
    newest = job.execute_in_process(instance=instance, partition_key=today)
    assert older.success and newest.success

    # 40 days on, the runs are past a run retention of 30; the day is inside 400.
    report = prune(instance, settings, now=time.time() + 40 * DAY_SECONDS)

    assert report.runs == [older.run_id]
    assert instance.get_run_by_id(older.run_id) is None
    assert instance.get_run_by_id(newest.run_id) is not None
    assert instance.get_materialized_partitions(dg.AssetKey(ASSIGNMENTS)) == {today}
