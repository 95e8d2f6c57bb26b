"""Health in the UI: checks on the `system_health` asset, evaluated by a sensor, and alerts.

The sensor reports each check as an asset check evaluation, so the asset's Checks tab shows
every check's status, value, threshold and history; the same checks can be run by hand from
the UI (the `system_health_checks` multi-check). Alerts go out on status changes only.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from hive_pipelines.defs.health.sources import InstanceSources
from hive_pipelines.defs.runs import step_failure_text
from hive_pipelines.health.alerts import HealthCursor, deliver, post_json, transitions
from hive_pipelines.health.checks import CHECK_NAMES, CheckResult, by_check, evaluate, overall
from hive_pipelines.settings import HiveSettings
from hive_pipelines.tags import FLOW_TAG

HEALTH_ASSET = dg.AssetKey("system_health")
DESCRIPTIONS = {
    "failure_rate": "Share of failed runs per flow over the recent window (worst flow).",
    "oldest_queued_run": "Seconds the oldest queued run has waited.",
    "runs_in_progress": "Runs starting or started.",
    "inbox_backlog": "Events waiting in the inbox, not yet decided by the host.",
    "inbox_oldest_event": "Seconds since the oldest waiting event arrived.",
    "quarantine_growth": "Events quarantined in the last hour.",
    "open_circuits": "Flows whose circuit is open or half-open.",
    "registry_size": "Bytes of registry Parquet files.",
    "registry_partitions": "Registry days stored beyond the retention period.",
    "last_pruning": "Seconds since the last successful prune_job run.",
    "storage_size": "Bytes in the Dagster storage folder.",
    "free_disk": "Free share of the disk holding DAGSTER_HOME.",
    "daemon_heartbeat": "Seconds since the stalest Dagster daemon heartbeat.",
    "daemon_memory": "Resident memory of the dagster-daemon process, in bytes.",
}


def build_health_definitions(
    settings: HiveSettings, clock: Callable[[], float] = time.time
) -> dg.Definitions:
    health_asset = dg.AssetSpec(
        HEALTH_ASSET,
        group_name="health",
        description="The system's health: see its checks, evaluated by health_sensor.",
    )
    specs = [
        dg.AssetCheckSpec(n, asset=HEALTH_ASSET, description=DESCRIPTIONS[n]) for n in CHECK_NAMES
    ]

    @dg.multi_asset_check(specs=specs, name="system_health_checks")
    def system_health_checks(
        context: dg.AssetCheckExecutionContext,
    ) -> Iterator[dg.AssetCheckResult]:
        results = evaluate(InstanceSources(context.instance, settings), settings.health, clock())
        for result in by_check(results):
            yield dg.AssetCheckResult(**_check_fields(result))

    @dg.sensor(
        name="health_sensor",
        minimum_interval_seconds=settings.health_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates every health check, reports it on system_health, alerts on change.",
    )
    def health_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = clock()
        results = evaluate(InstanceSources(context.instance, settings), settings.health, now)
        alerts, cursor = transitions(
            results, HealthCursor.parse(context.cursor), now, settings.alert_renotify_seconds
        )
        url = settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
        sent, cursor = deliver(alerts, cursor, url, settings.alert_timeout_seconds)
        for alert in alerts:
            context.log.warning(alert["text"])
        evaluations = [dg.AssetCheckEvaluation(**_check_fields(r)) for r in by_check(results)]
        status = overall(results)
        counts = {
            s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail", "unknown")
        }
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        context.log.info(
            "Health %s (%s); %d alert(s), %d delivered, %d pending",
            status,
            summary,
            len(alerts),
            sent,
            len(cursor.pending),
        )
        return dg.SensorResult(
            asset_events=evaluations,
            cursor=cursor.model_dump_json(),
            skip_reason=f"Health {status}: {summary}; {len(alerts)} alert(s). No run to launch.",
        )

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        # Runs of `hive run` have no code location origin; the flow tag selects the runs.
        monitor_all_code_locations=True,
        description="Alerts once per failed run of a flow: flow, failed node, error, run id.",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        flow = run.tags.get(FLOW_TAG)
        if flow is None:
            return
        failures = context.get_step_failure_events()
        alert = {
            "kind": "run_failure",
            "flow": flow,
            "run_id": run.run_id,
            "failed_nodes": [event.step_key for event in failures],
            # The error itself, not the event's "Execution of step ... failed."
            "error": (
                step_failure_text(failures[0]) if failures else context.failure_event.message
            ),
            "text": f"Run {run.run_id} of flow {flow!r} failed at "
            f"{', '.join(e.step_key or '?' for e in failures) or 'run level'}.",
        }
        context.log.warning(alert["text"])
        url = settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
        if url is not None and not post_json(url, alert, settings.alert_timeout_seconds):
            # The run status sensor's cursor does not move past a failed evaluation, so the
            # alert for this run is tried again on the next tick, and only for this run.
            raise AlertNotDelivered(f"Could not deliver the failure alert of run {run.run_id}.")

    return dg.Definitions(
        assets=[health_asset],
        asset_checks=[system_health_checks],
        sensors=[health_sensor, run_failure_alert_sensor],
    )


class AlertNotDelivered(dg.DagsterError):
    """A DagsterError passes Dagster's user-code boundary, so the evaluation itself fails.
    Any other exception is caught there and the cursor moves past the run all the same."""


def _check_fields(result: CheckResult) -> dict[str, Any]:
    """What a check evaluation says, the same from the sensor and from a run of the checks."""
    return {
        "asset_key": HEALTH_ASSET,
        "check_name": result.name,
        "passed": result.status == "pass",
        "severity": _severity(result),
        "metadata": _metadata(result),
        "description": result.message,
    }


def _severity(result: CheckResult) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if result.status == "fail" else dg.AssetCheckSeverity.WARN


def _metadata(result: CheckResult) -> dict[str, dg.MetadataValue]:
    value = (
        dg.MetadataValue.float(result.value)
        if result.value is not None
        else dg.MetadataValue.text("n/a")
    )
    return {
        "status": dg.MetadataValue.text(result.status),
        "value": value,
        "threshold": dg.MetadataValue.text(result.threshold or "n/a"),
        "message": dg.MetadataValue.text(result.message),
    }
