"""The host's sensors: inbox events become runs; finished runs settle their event files."""

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dagster as dg

from hive_pipelines.defs.runs import FINISHED, op_config, step_failure_text
from hive_pipelines.flowgraph.validate import FlowPlan
from hive_pipelines.host.circuit import RunOutcome, TrialOutcome
from hive_pipelines.host.inbox import move_to_processed, record_failure
from hive_pipelines.host.tick import Host, HostCursor, run_tick
from hive_pipelines.settings import HiveSettings
from hive_pipelines.tags import (
    EVENT_ID_TAG,
    EVENT_KEY_TAG,
    EVENT_PATH_TAG,
    EVENT_SOURCE_TAG,
    FLOW_TAG,
    SOURCE_TAG,
)
from hive_pipelines.transforms.registry import TransformRegistry

RESET_JOB = "reset_circuit"


class InstanceLedger:
    """The host's view of Dagster's run records: which events ran and how flows fared."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._resets: list[dg.RunRecord] | None = None  # read once per tick, for every flow

    def outcomes(self, flow: str, limit: int) -> list[RunOutcome]:
        records = self._instance.get_run_records(
            dg.RunsFilter(job_name=flow, tags={SOURCE_TAG: "host"}, statuses=FINISHED),
            limit=limit,
            order_by="update_timestamp",  # the most recently finished, not the newest created
        )
        return [
            RunOutcome(
                end_time=record.end_time or record.update_timestamp.timestamp(),
                succeeded=record.dagster_run.status == dg.DagsterRunStatus.SUCCESS,
            )
            for record in records
        ]

    def event_outcome(self, key: str) -> TrialOutcome:
        """How the run of an event key went: missing, pending, success or failure."""
        records = self._instance.get_run_records(dg.RunsFilter(tags={EVENT_KEY_TAG: key}), limit=1)
        if not records:
            return "missing"
        status = records[0].dagster_run.status
        if status == dg.DagsterRunStatus.SUCCESS:
            return "success"
        if status in FINISHED:
            return "failure"
        return "pending"

    def reset_at(self, flow: str) -> float | None:
        """When the circuit of `flow` was last reset by a successful reset_circuit run."""
        if self._resets is None:
            self._resets = list(
                self._instance.get_run_records(
                    dg.RunsFilter(job_name=RESET_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
                    limit=50,
                )
            )
        for record in self._resets:
            if op_config(record, "reset", "flow") == flow:
                return record.end_time or record.update_timestamp.timestamp()
        return None


def build_inbox_sensor(
    plans: Mapping[str, FlowPlan],
    jobs: list[dg.JobDefinition],
    settings: HiveSettings,
    registry: TransformRegistry,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """The sensor that launches one run per inbox event, bounded per tick."""
    inbox = settings.resolved_inbox_dir

    @dg.sensor(
        name="inbox_sensor",
        description=(
            f"Launches one run per event in {inbox}: data files in <flow>/ and JSON requests "
            f"in requests/, at most {settings.host_max_events_per_tick} per tick; bad events "
            "go to .quarantine/ with a reason; a flow that keeps failing is held by its circuit."
        ),
        jobs=jobs or None,
        minimum_interval_seconds=settings.host_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        host = Host(inbox, plans, settings, registry, InstanceLedger(context.instance), clock)
        result = run_tick(host, HostCursor.parse(context.cursor))
        for line in result.log:
            context.log.info(line)

        requests = [
            dg.RunRequest(
                run_key=event.key,
                job_name=event.flow,
                run_config=event.run_config,
                tags={
                    SOURCE_TAG: "host",
                    FLOW_TAG: event.flow,
                    EVENT_KEY_TAG: event.key,
                    EVENT_ID_TAG: event.event_id,
                    EVENT_SOURCE_TAG: event.source,
                    EVENT_PATH_TAG: str(event.path.relative_to(inbox)),
                },
            )
            for event in result.launches
        ]
        context.log.info(
            "Tick: %d run(s) requested, %d quarantined, %d duplicate(s), %d routed",
            len(requests),
            len(result.quarantined),
            len(result.duplicates),
            result.routed,
        )
        return dg.SensorResult(
            run_requests=requests,
            cursor=result.cursor.model_dump_json(),
            skip_reason=result.skip_reason(),
        )

    return inbox_sensor


def build_event_status_sensors(settings: HiveSettings) -> list[dg.SensorDefinition]:
    """After a host run: success moves its event to .processed/; failure records why."""
    inbox = settings.resolved_inbox_dir

    @dg.run_status_sensor(
        name="event_done_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        description="Moves the event of each successful host run to the inbox's .processed/.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.host_interval_seconds,
    )
    def event_done_sensor(context: dg.RunStatusSensorContext) -> None:
        relative = context.dagster_run.tags.get(EVENT_PATH_TAG)
        if relative is None:
            return
        path = inbox / relative
        moved = move_to_processed(inbox, Path(relative).parts[0], path)
        context.log.info("Event %s of run %s -> %s", relative, context.dagster_run.run_id, moved)

    @dg.run_failure_sensor(
        name="event_failed_sensor",
        description="Records, beside the inbox, why the run of a host event failed.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.host_interval_seconds,
    )
    def event_failed_sensor(context: dg.RunFailureSensorContext) -> None:
        _record_failure(context, context.get_step_failure_events(), context.failure_event.message)

    @dg.run_status_sensor(
        name="event_canceled_sensor",
        run_status=dg.DagsterRunStatus.CANCELED,
        description="Records, beside the inbox, that the run of a host event was canceled.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.host_interval_seconds,
    )
    def event_canceled_sensor(context: dg.RunStatusSensorContext) -> None:
        _record_failure(context, [], "The run was canceled (by hand or past its max run time).")

    def _record_failure(
        context: dg.RunStatusSensorContext,
        failures: Sequence[dg.DagsterEvent],
        message: str | None,
    ) -> None:
        tags = context.dagster_run.tags
        relative = tags.get(EVENT_PATH_TAG)
        if relative is None:
            return
        record = {
            "event": relative,
            "event_key": tags.get(EVENT_KEY_TAG),
            "run_id": context.dagster_run.run_id,
            "failed_nodes": [event.step_key for event in failures],
            "error": message,
            "node_errors": {event.step_key: step_failure_text(event) for event in failures},
            "failed_at": time.time(),
        }
        stream = Path(relative).parts[0]
        target = record_failure(inbox, stream, Path(relative).name, record)
        context.log.info(
            "Run %s of event %s failed; recorded in %s", record["run_id"], relative, target
        )

    return [event_done_sensor, event_failed_sensor, event_canceled_sensor]
