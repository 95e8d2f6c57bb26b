"""The `hive` command: validate and show flows, list transforms, run a flow."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from hive_pipelines.settings import get_settings


class HiveGroup(click.Group):
    """Turns the errors a user can cause (settings, DAGSTER_HOME, missing folders, invalid
    flows, transform modules) into one clear message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from hive_pipelines.flowgraph.problems import FlowValidationError
        from hive_pipelines.settings import SettingsInvalidError

        try:
            return super().invoke(ctx)
        except (SettingsInvalidError, FlowValidationError, FileNotFoundError, ImportError) as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            if type(exc).__name__ == "DagsterHomeNotSetError":
                raise click.ClickException(
                    "DAGSTER_HOME is not set. Set it to the instance folder, e.g. "
                    "`export DAGSTER_HOME=$PWD/var/dagster_home` (make demo and make dev set it)."
                ) from None
            raise


@click.group(cls=HiveGroup)
def main() -> None:
    """hive_pipelines: graph flows on Dagster."""


@main.group()
def flows() -> None:
    """Validate and inspect flow files."""


@flows.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def validate_command(paths: tuple[Path, ...]) -> None:
    """Check flow files (default: every file in the flows folder); exit 1 on any problem."""
    from hive_pipelines.flowgraph.validate import flow_files, validate_flows
    from hive_pipelines.transforms.registry import load_transform_modules

    settings = get_settings()
    registry = load_transform_modules(settings.transform_modules)
    files: list[Path] = []
    for path in paths or (settings.flows_dir,):
        files.extend(flow_files(path, settings.max_flow_files) if path.is_dir() else [path])
    reports = validate_flows(files, registry, settings)
    problems = 0
    for report in reports:
        if report.ok and report.plan is not None:
            click.echo(
                f"ok      {report.path}: flow {report.name!r}, {len(report.plan.nodes)} nodes"
            )
            continue
        problems += len(report.problems)
        click.echo(f"INVALID {report.path}: {len(report.problems)} problem(s)")
        for problem in report.problems:
            click.echo(f"  {problem}")
    click.echo(f"{len(reports)} file(s), {problems} problem(s).")
    sys.exit(1 if problems else 0)


@flows.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """Print a flow's nodes in execution order with their upstreams."""
    plan = _plan_named(name)
    click.echo(f"flow {plan.name} ({plan.path}), max run time {plan.max_run_seconds:g} s")
    if plan.spec.description:
        click.echo(f"  {plan.spec.description.strip()}")
    for index, node in enumerate(plan.nodes, start=1):
        upstream = ", ".join(node.spec.upstream) or "-"
        click.echo(
            f"{index:>3}. {node.id:<24} {node.spec.transform:<16} <- {upstream}"
            f"   [timeout {node.timeout_seconds:g} s, retries {node.retry.max_retries}]"
        )


@main.command("transforms")
def transforms_command() -> None:
    """List the registered transforms."""
    from hive_pipelines.transforms.registry import load_transform_modules

    for item in load_transform_modules(get_settings().transform_modules):
        click.echo(f"{item.name:<20} {item.arity_text:<28} {item.description}")


@main.command("run")
@click.argument("name")
@click.option(
    "--executor",
    type=click.Choice(["in_process", "multiprocess"]),
    default=None,
    help="Override the executor (default: HIVE_DEFAULT_EXECUTOR).",
)
@click.option("--quiet", is_flag=True, help="Log only warnings and errors, then the summary.")
def run_command(name: str, executor: str | None, quiet: bool) -> None:
    """Run a flow on the Dagster instance of DAGSTER_HOME and say where its outputs are."""
    import dagster as dg

    _plan_named(name)  # a clear report before Dagster starts, if the flow is invalid
    settings = get_settings()
    job = dg.build_reconstructable_job(
        "hive_pipelines.defs.flows.definitions", "build_flow_job_by_name", (name,)
    )
    level = "WARNING" if quiet else "INFO"
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": level}}}}
    if executor == "multiprocess":
        from hive_pipelines.defs.flows.compiler import multiprocess_config

        run_config["execution"] = {"config": {"multiprocess": multiprocess_config(settings)}}
    elif executor == "in_process":
        run_config["execution"] = {"config": {"in_process": {}}}

    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(job, instance=instance, run_config=run_config, raise_on_error=False)
        seconds = time.monotonic() - started
        _print_summary(instance, result.run_id, seconds)
        if not result.success:
            click.echo(f"Run {result.run_id} of flow {name!r} FAILED; see `dagster dev`.", err=True)
            sys.exit(1)
    click.echo(f"Outputs are under {settings.resolved_output_dir / name}.")


def _plan_named(name: str) -> Any:
    from hive_pipelines.flowgraph.problems import FlowValidationError
    from hive_pipelines.flowgraph.validate import flow_files, validate_flows
    from hive_pipelines.transforms.registry import load_transform_modules

    settings = get_settings()
    registry = load_transform_modules(settings.transform_modules)
    reports = validate_flows(
        flow_files(settings.flows_dir, settings.max_flow_files), registry, settings
    )
    for report in reports:
        if report.name == name:
            if report.plan is None:
                raise click.ClickException(str(FlowValidationError(report.problems)))
            return report.plan
    known = ", ".join(sorted(r.name for r in reports if r.name)) or "none"
    raise click.ClickException(f"No flow named {name!r} in {settings.flows_dir}; flows: {known}.")


def _print_summary(instance: Any, run_id: str, seconds: float) -> None:
    """One line per node: rows produced and where; then the files the flow wrote."""
    import dagster as dg
    import pandas as pd

    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_OUTPUT, limit=10_000
    ).records
    click.echo(
        f"Run {run_id} finished in {seconds:.1f} s (DAGSTER_HOME={instance.root_directory})."
    )
    written: list[str] = []
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = event.event_specific_data.metadata
        rows = metadata.get("dagster/row_count")
        count = f"{rows.value:,}" if rows is not None else "?"
        click.echo(f"  {event.step_key:<24} {count:>10} rows")
        path = metadata.get("path")
        if path is not None and {"table", "path"} <= set(_columns(metadata)):
            written.extend(pd.read_parquet(path.value)["path"].tolist())
    if written:
        click.echo("Written:")
        for path in written:
            click.echo(f"  {path}")


def _columns(metadata: dict[str, Any]) -> list[str]:
    schema = metadata.get("dagster/column_schema")
    return [column.name for column in schema.value.columns] if schema is not None else []


@main.group()
def circuit() -> None:
    """Inspect and reset the host's per-flow circuit breakers."""


@circuit.command("reset")
@click.argument("flow")
def circuit_reset_command(flow: str) -> None:
    """Close FLOW's circuit: runs the reset_circuit job on the instance of DAGSTER_HOME."""
    import dagster as dg

    from hive_pipelines.defs.host.definitions import reset_circuit_job

    _plan_named(flow)
    config = {
        "ops": {"reset": {"config": {"flow": flow}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    with dg.DagsterInstance.get() as instance:
        result = reset_circuit_job.execute_in_process(run_config=config, instance=instance)
    if not result.success:
        raise click.ClickException(f"The reset run {result.run_id} failed.")
    click.echo(
        f"Circuit of flow {flow!r} reset by run {result.run_id}; the inbox sensor closes it "
        "on its next tick."
    )


@circuit.command("status")
def circuit_status_command() -> None:
    """Each flow's circuit as the inbox sensor last saved it."""
    import dagster as dg

    from hive_pipelines.host.tick import HostCursor

    with dg.DagsterInstance.get() as instance:
        states = [
            state
            for state in instance.all_instigator_state()
            if state.name == "inbox_sensor" and state.instigator_data is not None
        ]
        cursor = HostCursor.parse(
            getattr(states[0].instigator_data, "cursor", None) if states else None
        )
    if not cursor.circuits:
        click.echo("No circuit has left the closed state yet.")
    for flow, state in sorted(cursor.circuits.items()):
        click.echo(f"{flow:<24} {state.state:<10} openings {state.open_count}")


@main.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def health_command(as_json: bool) -> None:
    """The health report; exit 0 when healthy, 1 when degraded, 2 when failing."""
    import json
    import time

    import dagster as dg

    from hive_pipelines.defs.health.sources import InstanceSources
    from hive_pipelines.health.checks import evaluate, overall

    try:
        settings = get_settings()
        with dg.DagsterInstance.get() as instance:
            results = evaluate(InstanceSources(instance, settings), settings.health, time.time())
    except Exception as exc:  # health cannot be read: that is failing, not degraded
        click.echo(f"health cannot be evaluated: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    status = overall(results)
    if as_json:
        report = {"status": status, "checks": [r.as_dict() for r in results]}
        click.echo(json.dumps(report, indent=2))
    else:
        for r in results:
            value = "-" if r.value is None else f"{r.value:,.4g}"
            click.echo(f"{r.status:<8} {r.key:<32} {value:>12}  {r.message}")
        click.echo(f"overall: {status}")
    sys.exit({"pass": 0, "warn": 1, "fail": 2}[status])
