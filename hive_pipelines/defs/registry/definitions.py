"""The registry's definitions: assets, the sensor that writes days soon after runs end,
and the daily pruning schedule."""

from datetime import UTC, datetime

import dagster as dg

from hive_pipelines.defs.registry.assets import build_registry_assets
from hive_pipelines.defs.registry.prune import REGISTRY_JOB, build_prune_job
from hive_pipelines.defs.runs import FINISHED
from hive_pipelines.registry.assignments import day_of
from hive_pipelines.settings import HiveSettings
from hive_pipelines.tags import FLOW_TAG

OVERLAP_SECONDS = 1.0


def build_registry_definitions(settings: HiveSettings) -> dg.Definitions:
    assets = build_registry_assets(settings)
    registry_job = dg.define_asset_job(
        REGISTRY_JOB,
        selection=dg.AssetSelection.assets(*assets),
        description="Writes one day of the registry from the instance's run records.",
    )
    prune_job = build_prune_job(settings)
    prune_schedule = dg.ScheduleDefinition(
        name="prune_schedule",
        job=prune_job,
        cron_schedule=settings.prune_cron,
        execution_timezone=settings.prune_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Prunes the registry and run history every day (HIVE_PRUNE_CRON).",
    )
    partitions = assets[0].partitions_def
    assert partitions is not None

    @dg.sensor(
        name="registry_sensor",
        job=registry_job,
        minimum_interval_seconds=settings.registry_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests the registry day of each flow run that ended since its last tick.",
    )
    def registry_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # The cursor: the newest update read, then the runs read within the overlap before it,
        # so that a run read again through the overlap is not requested again.
        stamp, _, ids = (context.cursor or "0").partition(" ")
        since, seen = float(stamp), set(ids.split())
        records = context.instance.get_run_records(
            dg.RunsFilter(
                statuses=FINISHED,
                updated_after=datetime.fromtimestamp(max(since - OVERLAP_SECONDS, 0), UTC),
            ),
            limit=settings.registry_runs_per_tick,
            order_by="update_timestamp",
            ascending=True,
        )
        newest = max((r.update_timestamp.timestamp() for r in records), default=since)
        keys = set(partitions.get_partition_keys())
        days = sorted(
            {
                day_of(r.end_time)
                for r in records
                if FLOW_TAG in r.dagster_run.tags
                and r.end_time is not None
                and r.dagster_run.run_id not in seen
            }
            & keys
        )
        requests = [dg.RunRequest(run_key=f"{day}@{newest:.6f}", partition_key=day) for day in days]
        skip = (
            None if requests else f"No flow run ended since {datetime.fromtimestamp(since, UTC)}."
        )
        recent = sorted(
            r.dagster_run.run_id
            for r in records
            if r.update_timestamp.timestamp() > newest - OVERLAP_SECONDS
        )
        cursor = " ".join([str(newest), *recent])
        return dg.SensorResult(run_requests=requests, cursor=cursor, skip_reason=skip)

    return dg.Definitions(
        assets=assets,
        jobs=[registry_job, prune_job],
        schedules=[prune_schedule],
        sensors=[registry_sensor],
    )
