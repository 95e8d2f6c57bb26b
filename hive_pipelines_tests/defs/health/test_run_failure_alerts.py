"""run_failure_alert_sensor over a real instance: real failed flow runs, the sensor evaluated
tick after tick through its own cursor, alerts POSTed to a real webhook on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from hive_pipelines.defs.health.definitions import build_health_definitions
from hive_pipelines_tests.health import (
    Webhook,
    flow_jobs,
    fresh_instance,
    run_flow,
    use_settings,
    write_flows,
)

SENSOR = "run_failure_alert_sensor"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """conftest's real SQLite instance, copied from an empty one to skip creating schemas."""
    with fresh_instance(tmp_path / "dagster_home") as real_instance:
        yield real_instance


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.fixture
def setup(
    hive_env: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> tuple[dg.Definitions, dict[str, dg.JobDefinition]]:
    write_flows(hive_env)
    settings = use_settings(monkeypatch, alert_webhook_url=webhook.url, alert_timeout_seconds=2)
    return build_health_definitions(settings), flow_jobs(settings)


@dg.op
def explode() -> None:
    raise RuntimeError("not a flow")


@dg.job
def plain_failing_job() -> None:
    explode()


def tick(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    cursor: str | None,
    repository_name: str | None = None,
) -> Any:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=definitions,
        repository_name=repository_name,
    )
    return definitions.resolve_sensor_def(SENSOR).evaluate_tick(context)


def test_each_failed_flow_run_is_announced_once_and_old_failures_never(
    setup: tuple[dg.Definitions, dict[str, dg.JobDefinition]],
    instance: dg.DagsterInstance,
    webhook: Webhook,
) -> None:
    definitions, jobs = setup
    old = run_flow(jobs["flaky"], instance)  # fails: its first attempt
    assert not old.success

    first = tick(definitions, instance, None)
    assert webhook.attempts == []
    assert first.skip_message.startswith(f"Initiating {SENSOR}")

    a = run_flow(jobs["broken"], instance)
    assert not a.success
    second = tick(definitions, instance, first.cursor)
    [alert] = webhook.delivered
    assert alert == {
        "kind": "run_failure",
        "flow": "broken",
        "run_id": a.run_id,
        "failed_nodes": ["crash"],
        "error": alert["error"],
        "text": f"Run {a.run_id} of flow 'broken' failed at crash.",
    }
    assert "planned failure on attempt 1" in alert["error"]

    third = tick(definitions, instance, second.cursor)
    assert len(webhook.attempts) == 1

    assert not plain_failing_job.execute_in_process(instance=instance, raise_on_error=False).success
    b = run_flow(jobs["broken"], instance)
    assert run_flow(jobs["flaky"], instance).success  # its second attempt
    fourth = tick(definitions, instance, third.cursor)
    fifth = tick(definitions, instance, fourth.cursor)
    tick(definitions, instance, fifth.cursor)

    assert [(p["flow"], p["run_id"]) for p in webhook.attempts] == [
        ("broken", a.run_id),
        ("broken", b.run_id),
    ]
    assert old.run_id not in {p["run_id"] for p in webhook.attempts}


def test_an_alert_the_webhook_refused_is_sent_on_the_next_tick(
    setup: tuple[dg.Definitions, dict[str, dg.JobDefinition]],
    instance: dg.DagsterInstance,
    webhook: Webhook,
) -> None:
    definitions, jobs = setup
    started = tick(definitions, instance, None)
    failed = run_flow(jobs["broken"], instance)
    webhook.status = 503

    with pytest.raises(
        Exception, match=f"Could not deliver the failure alert of run {failed.run_id}"
    ):
        tick(definitions, instance, started.cursor)
    assert [p["run_id"] for p in webhook.attempts] == [failed.run_id]
    assert webhook.delivered == []

    webhook.status = 200
    # The failed evaluation saved no cursor: the daemon evaluates again from the last one.
    retried = tick(definitions, instance, started.cursor)
    tick(definitions, instance, retried.cursor)

    assert [p["run_id"] for p in webhook.delivered] == [failed.run_id]


def test_a_flow_run_started_outside_the_daemon_is_announced_too(
    setup: tuple[dg.Definitions, dict[str, dg.JobDefinition]],
    instance: dg.DagsterInstance,
    webhook: Webhook,
) -> None:
    """`hive run` executes a flow in its own process, so the run has no code location
    origin; the daemon evaluates the sensor in the project's repository."""
    definitions, jobs = setup
    started = tick(definitions, instance, None, repository_name="__repository__")
    failed = run_flow(jobs["broken"], instance)
    run = instance.get_run_by_id(failed.run_id)
    assert run is not None and run.remote_job_origin is None

    tick(definitions, instance, started.cursor, repository_name="__repository__")

    assert [(p["flow"], p["run_id"]) for p in webhook.delivered] == [("broken", failed.run_id)]
