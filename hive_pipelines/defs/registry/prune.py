"""Retention: prune registry partitions and Dagster's run history, in bounded batches.

Dagster never deletes old runs, and its open-source SQL storages do not implement
`wipe_asset_partitions`. What does work: deleting a run deletes its event log, and with it
the materialization records it wrote. So a registry day is pruned by removing its files and
the registry runs that materialized it; old flow runs go with their event logs and their
node output folders. Each deletion stands alone, so an interrupted pruning is finished by
the next one, and a dry run only reports.
"""

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from hive_pipelines.defs.registry.assets import ASSIGNMENTS, WORKER_DAYS
from hive_pipelines.defs.runs import FINISHED
from hive_pipelines.registry.retention import cutoff_day, expired_days, run_cutoff
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings

REGISTRY_JOB = "registry_job"
PRUNE_JOB = "prune_job"
PARTITION_TAG = "dagster/partition"
LISTED = 50


@dataclass
class PruneReport:
    """What a pruning removed (or, in a dry run, would remove)."""

    dry_run: bool
    partitions: list[str] = field(default_factory=list)
    missing_files: int = 0
    registry_runs: int = 0
    runs: list[str] = field(default_factory=list)
    node_output_folders: int = 0

    def metadata(self) -> dict[str, dg.MetadataValue]:
        return {
            "dry_run": dg.MetadataValue.bool(self.dry_run),
            "partitions_removed": dg.MetadataValue.int(len(self.partitions)),
            "partition_files_already_gone": dg.MetadataValue.int(self.missing_files),
            "registry_runs_removed": dg.MetadataValue.int(self.registry_runs),
            "runs_removed": dg.MetadataValue.int(len(self.runs)),
            "node_output_folders_removed": dg.MetadataValue.int(self.node_output_folders),
            "first_partitions": dg.MetadataValue.json(self.partitions[:LISTED]),
            "first_runs": dg.MetadataValue.json(self.runs[:LISTED]),
        }


def prune(
    instance: dg.DagsterInstance,
    settings: HiveSettings,
    now: float,
    dry_run: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> PruneReport:
    """Remove registry days and runs past their retention, at most `prune_max_per_run` each."""
    report = PruneReport(dry_run=dry_run)
    store = RegistryStore(settings.resolved_registry_dir)
    budget = settings.prune_max_per_run

    days = sorted(set(store.days(ASSIGNMENTS)) | set(store.days(WORKER_DAYS)))
    for day in expired_days(days, now, settings.registry_retention_days)[:budget]:
        report.partitions.append(day)
        if dry_run:
            continue
        # Runs first: an interruption then leaves the files, so the next pruning finds the day.
        report.registry_runs += _delete_runs(
            instance, dg.RunsFilter(job_name=REGISTRY_JOB, tags={PARTITION_TAG: day}), budget
        )
        for asset in (ASSIGNMENTS, WORKER_DAYS):
            if not store.delete(asset, day):
                report.missing_files += 1
        if len(report.partitions) % settings.prune_batch_size == 0:
            log(f"pruned {len(report.partitions)} registry days so far")

    cutoff = datetime.fromtimestamp(run_cutoff(now, settings.run_retention_days), UTC)
    old_runs = dg.RunsFilter(statuses=FINISHED, updated_before=cutoff)
    storage = _node_output_root(instance, settings)
    kept_from = cutoff_day(now, settings.registry_retention_days)
    listed: set[str] = set()
    kept: set[str] = set()
    while len(report.runs) < budget:
        batch = min(settings.prune_batch_size, budget - len(report.runs))
        # Runs left in place come back in every read: read past them (and, in a dry run,
        # past the runs already listed). There are at most one per registry day kept.
        records = instance.get_run_records(
            old_runs,
            limit=batch + len(kept) + (len(report.runs) if dry_run else 0),
            order_by="update_timestamp",
            ascending=True,
        )
        records = [r for r in records if r.dagster_run.run_id not in listed | kept]
        if not records:
            break
        for record in records[:batch]:
            run_id = record.dagster_run.run_id
            if _materializes_a_kept_day(instance, record, kept_from):
                kept.add(run_id)
                continue
            report.runs.append(run_id)
            listed.add(run_id)
            if dry_run:
                continue
            instance.delete_run(run_id)
            folder = storage / run_id
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                report.node_output_folders += 1
        log(f"pruned {len(report.runs)} runs so far")
        if dry_run and len(records) < batch:
            break
    return report


def _materializes_a_kept_day(
    instance: dg.DagsterInstance, record: dg.RunRecord, kept_from: str
) -> bool:
    """The newest successful registry run of a day still kept holds that day's
    materialization record, so run retention leaves it until the day itself expires."""
    run = record.dagster_run
    day = run.tags.get(PARTITION_TAG)
    if run.job_name != REGISTRY_JOB or day is None or day < kept_from:
        return False
    newest = instance.get_run_records(
        dg.RunsFilter(
            job_name=REGISTRY_JOB,
            tags={PARTITION_TAG: day},
            statuses=[dg.DagsterRunStatus.SUCCESS],
        ),
        limit=1,
    )
    return bool(newest) and newest[0].dagster_run.run_id == run.run_id


def _delete_runs(instance: dg.DagsterInstance, filters: dg.RunsFilter, limit: int) -> int:
    records = instance.get_run_records(filters, limit=limit)
    finished = [r for r in records if r.dagster_run.status in FINISHED]
    for record in finished:
        instance.delete_run(record.dagster_run.run_id)
    return len(finished)


def _node_output_root(instance: dg.DagsterInstance, settings: HiveSettings) -> Path:
    if settings.storage_dir is not None:
        return settings.storage_dir
    return Path(instance.storage_directory()) / "hive"


class PruneConfig(dg.Config):
    dry_run: bool = False


def build_prune_job(settings: HiveSettings) -> dg.JobDefinition:
    @dg.op(description="Prunes registry days and runs past their retention, in batches.")
    def prune_history(context: dg.OpExecutionContext, config: PruneConfig) -> dg.Output[int]:
        started = time.monotonic()
        report = prune(context.instance, settings, time.time(), config.dry_run, context.log.info)
        context.log.info(
            "%s %d registry days and %d runs in %.1f s",
            "Would prune" if config.dry_run else "Pruned",
            len(report.partitions),
            len(report.runs),
            time.monotonic() - started,
        )
        removed = len(report.partitions) + len(report.runs)
        return dg.Output(removed, metadata=report.metadata())

    @dg.job(
        name=PRUNE_JOB,
        description=(
            f"Deletes registry days older than {settings.registry_retention_days} days and "
            f"finished runs older than {settings.run_retention_days} days (with their event "
            "logs and node outputs). Never touches queued or running runs."
        ),
    )
    def prune_job() -> None:
        prune_history()

    return prune_job
