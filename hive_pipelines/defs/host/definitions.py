"""The host's definitions: the inbox sensor, event status sensors, the circuit reset job
and one schedule per flow that declares one."""

import dagster as dg

from hive_pipelines.defs.host.sensors import (
    FLOW_TAG,
    RESET_JOB,
    SOURCE_TAG,
    build_event_status_sensors,
    build_inbox_sensor,
)
from hive_pipelines.flowgraph.validate import FlowPlan, FlowReport
from hive_pipelines.settings import HiveSettings
from hive_pipelines.transforms.registry import TransformRegistry


def build_host_definitions(
    reports: list[FlowReport],
    jobs: dict[str, dg.JobDefinition],
    settings: HiveSettings,
    registry: TransformRegistry,
) -> dg.Definitions:
    plans = {r.plan.name: r.plan for r in reports if r.plan is not None}
    schedules = [
        flow_schedule(plan, jobs[name], settings)
        for name, plan in plans.items()
        if plan.spec.schedule is not None
    ]
    return dg.Definitions(
        jobs=[reset_circuit_job],
        sensors=[
            build_inbox_sensor(plans, [jobs[name] for name in plans], settings, registry),
            *build_event_status_sensors(settings),
        ],
        schedules=schedules,
    )


def flow_schedule(
    plan: FlowPlan, job: dg.JobDefinition, settings: HiveSettings
) -> dg.ScheduleDefinition:
    """A flow's cron schedule: on by default in production, off in development, unless
    the flow's YAML says `enabled`."""
    spec = plan.spec.schedule
    assert spec is not None
    running = settings.default_schedule_running if spec.enabled is None else spec.enabled
    return dg.ScheduleDefinition(
        name=f"{plan.name}_schedule",
        job=job,
        cron_schedule=spec.cron,
        execution_timezone=spec.timezone,
        tags={SOURCE_TAG: "schedule", FLOW_TAG: plan.name},
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"Runs flow {plan.name!r} on cron {spec.cron!r} ({spec.timezone}).",
    )


class ResetCircuitConfig(dg.Config):
    flow: str


@dg.op(description="Marks the flow's circuit for reset; the inbox sensor closes it next tick.")
def reset(context: dg.OpExecutionContext, config: ResetCircuitConfig) -> None:
    context.log.info("Circuit of flow %s reset by hand.", config.flow)


@dg.job(
    name=RESET_JOB,
    description="Close a flow's circuit by hand. Config: ops.reset.config.flow = the flow.",
    tags={SOURCE_TAG: "manual"},
)
def reset_circuit_job() -> None:
    reset()
