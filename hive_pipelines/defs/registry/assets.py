"""The registry's assets: task assignments per day, and each worker's day.

A partition is recomputed from Dagster's own run and step records of the runs that ended
that day (UTC), so writing it twice gives the same rows and a late write loses nothing.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from hive_pipelines.defs.runs import FINISHED, innermost_error, step_failure_text
from hive_pipelines.registry.assignments import (
    RunInfo,
    StepEvent,
    day_bounds,
    task_assignments,
    worker_summary,
)
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings
from hive_pipelines.tags import EVENT_ID_TAG, FLOW_TAG, WORKER_KEY

REGISTRY_GROUP = "registry"
ASSIGNMENTS = "task_assignments"
WORKER_DAYS = "worker_days"
STEP_EVENTS = {
    dg.DagsterEventType.STEP_WORKER_STARTING,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_RESTARTED,
    dg.DagsterEventType.STEP_UP_FOR_RETRY,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
    dg.DagsterEventType.STEP_OUTPUT,
}
RUN_PAGE = 500


def registry_partitions(
    settings: HiveSettings, now: datetime | None = None
) -> dg.PartitionsDefinition:
    """Daily partitions over the retention window, today included. The window moves as the
    code location reloads, so pruned days also leave the partitions definition."""
    today = (now or datetime.now(UTC)).date()
    start = today - timedelta(days=settings.registry_retention_days - 1)
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), end_offset=1, timezone="UTC")


def build_registry_assets(settings: HiveSettings) -> list[dg.AssetsDefinition]:
    partitions = registry_partitions(settings)
    store = RegistryStore(settings.resolved_registry_dir)

    @dg.asset(
        name=ASSIGNMENTS,
        group_name=REGISTRY_GROUP,
        partitions_def=partitions,
        description="Every node execution of every flow run that ended that day (UTC): flow, "
        "node, run, event, worker, when assigned, started and finished, attempts, outcome.",
    )
    def task_assignments_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        day = context.partition_key
        runs = finished_flow_runs(context.instance, day)
        events = [event for run in runs for event in step_events(context.instance, run.run_id)]
        frame = task_assignments(runs, events)
        path = store.write(ASSIGNMENTS, day, frame)
        context.log.info("Day %s: %d task assignments from %d runs", day, len(frame), len(runs))
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(frame),
                "runs": len(runs),
                "failures": int((frame["outcome"] == "failure").sum()),
                "path": dg.MetadataValue.path(str(path)),
            }
        )

    @dg.asset(
        name=WORKER_DAYS,
        group_name=REGISTRY_GROUP,
        partitions_def=partitions,
        deps=[ASSIGNMENTS],
        description="Per worker and day: tasks, failures, retries and busy seconds.",
    )
    def worker_days_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        day = context.partition_key
        summary = worker_summary(store.read(ASSIGNMENTS, day))
        path = store.write(WORKER_DAYS, day, summary)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": len(summary), "path": dg.MetadataValue.path(str(path))}
        )

    return [task_assignments_asset, worker_days_asset]


def finished_flow_runs(instance: dg.DagsterInstance, day: str) -> list[RunInfo]:
    """Flow runs (tagged hive/flow) that ended within the day, read page by page."""
    start, end = day_bounds(day)
    runs: list[RunInfo] = []
    cursor = None
    while True:
        records = instance.get_run_records(
            dg.RunsFilter(
                statuses=FINISHED,
                updated_after=datetime.fromtimestamp(start, UTC),
                created_before=datetime.fromtimestamp(end, UTC),
            ),
            limit=RUN_PAGE,
            cursor=cursor,
        )
        for record in records:
            tags = record.dagster_run.tags
            end_time = record.end_time
            if FLOW_TAG not in tags or end_time is None or not start <= end_time < end:
                continue
            runs.append(
                RunInfo(record.dagster_run.run_id, tags[FLOW_TAG], tags.get(EVENT_ID_TAG), end_time)
            )
        if len(records) < RUN_PAGE:
            return runs
        cursor = records[-1].dagster_run.run_id


def step_events(instance: dg.DagsterInstance, run_id: str) -> list[StepEvent]:
    """The step events of one run that the registry needs."""
    result = instance.get_records_for_run(run_id, of_type=STEP_EVENTS, limit=100_000)
    events = []
    for record in result.records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        worker = metadata.get(WORKER_KEY)
        error = getattr(event.event_specific_data, "error", None)
        user_failure = getattr(event.event_specific_data, "user_failure_data", None)
        failure_meta = getattr(user_failure, "metadata", None) or {}
        worker = worker or failure_meta.get(WORKER_KEY)
        events.append(
            StepEvent(
                run_id=run_id,
                step_key=event.step_key,
                kind=event.event_type_value,
                timestamp=entry.timestamp,
                worker=getattr(worker, "value", None),
                pid=event.pid,
                error_class=_text(failure_meta.get("error_class")) or _error_class(error),
                error_message=step_failure_text(event) if event.is_step_failure else None,
            )
        )
    return events


def _text(value: object) -> str | None:
    return getattr(value, "value", None) if value is not None else None


def _error_class(error: object) -> str | None:
    """The innermost cause's class: a dagster.Failure wraps the user's error."""
    return getattr(innermost_error(error), "cls_name", None)
