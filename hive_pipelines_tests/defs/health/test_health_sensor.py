"""The health sensor on a real instance: one asset check evaluation per check, stored by
Dagster, and alerts to a real webhook on 127.0.0.1 once per transition.

Statuses are moved by real readings: daemon heartbeats written at chosen times and a clock
the test sets (`build_health_definitions(settings, clock=...)`). A daemon-like process runs
throughout with a limit no process reaches, so `daemon_memory` passes whatever other daemons
run on this host and only the check under test changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import pytest
from dagster._daemon.types import DaemonHeartbeat

from hive_pipelines.defs.health.definitions import HEALTH_ASSET, build_health_definitions
from hive_pipelines.health.alerts import HealthCursor
from hive_pipelines.health.checks import CHECK_NAMES
from hive_pipelines.host.circuit import CircuitState
from hive_pipelines.host.tick import HostCursor
from hive_pipelines.settings import HiveSettings
from hive_pipelines_tests.health import (
    WEBHOOK_SECRET,
    Clock,
    Webhook,
    daemon_like_process,
    fresh_instance,
    save_sensor_cursor,
    use_settings,
)

TIB = 1 << 40


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """conftest's real SQLite instance, copied from an empty one to skip creating schemas."""
    with fresh_instance(tmp_path / "dagster_home") as real_instance:
        yield real_instance


@pytest.fixture
def daemon() -> Iterator[psutil.Process]:
    with daemon_like_process() as process:
        yield process


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def settings_with(monkeypatch: pytest.MonkeyPatch, **values: object) -> HiveSettings:
    return use_settings(
        monkeypatch,
        health__daemon_rss_bytes__warn=TIB,
        health__daemon_rss_bytes__fail=2 * TIB,
        **values,
    )


def beat(instance: dg.DagsterInstance, at: float, daemon_type: str = "SENSOR") -> None:
    instance.add_daemon_heartbeat(DaemonHeartbeat(at, daemon_type, "daemon-1"))


def tick(definitions: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    """One evaluation of health_sensor, as the daemon runs it."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions)
    return definitions.resolve_sensor_def("health_sensor").evaluate_tick(context)


def evaluations(data: Any) -> dict[str, dg.AssetCheckEvaluation]:
    found = {}
    for event in data.asset_events:
        assert isinstance(event, dg.AssetCheckEvaluation)
        assert event.asset_key == HEALTH_ASSET
        found[event.check_name] = event
    return found


def status(evaluation: dg.AssetCheckEvaluation) -> str:
    return evaluation.metadata["status"].value  # type: ignore[return-value]


def stored_status(record: Any) -> str:
    return record.event.dagster_event.event_specific_data.metadata["status"].value


def stored_value(record: Any) -> float:
    return record.event.dagster_event.event_specific_data.metadata["value"].value


def test_the_project_definitions_hold_the_health_asset_its_checks_and_sensors(
    settings: HiveSettings,
) -> None:
    from hive_pipelines.definitions import defs

    definitions = defs()

    specs = definitions.resolve_asset_graph().get_check_keys_for_assets({HEALTH_ASSET})
    assert sorted(key.name for key in specs) == sorted(CHECK_NAMES)
    assert definitions.get_sensor_def("health_sensor").minimum_interval_seconds == 60
    assert definitions.get_sensor_def("run_failure_alert_sensor") is not None


def test_every_check_is_reported_with_status_value_and_threshold(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_with(monkeypatch)
    now = time.time()
    beat(instance, now - 400)  # stale: fail
    circuits = HostCursor(circuits={"broken": CircuitState(state="open")})
    save_sensor_cursor(instance, "inbox_sensor", circuits.model_dump_json())  # one open: warn
    from hive_pipelines.definitions import defs

    data = tick(defs(), instance, None)

    found = evaluations(data)
    assert list(found) == CHECK_NAMES
    statuses = {name: status(e) for name, e in found.items()}
    assert statuses["daemon_heartbeat"] == "fail"
    assert statuses["open_circuits"] == "warn"
    assert statuses["last_pruning"] == "unknown"  # no pruning yet; no inbox folder either
    assert statuses["inbox_backlog"] == "unknown"
    assert statuses["failure_rate"] == statuses["daemon_memory"] == "pass"
    for name, evaluation in found.items():
        assert set(evaluation.metadata) == {"status", "value", "threshold", "message"}
        assert evaluation.passed == (statuses[name] == "pass")
        assert evaluation.severity == (
            dg.AssetCheckSeverity.ERROR if statuses[name] == "fail" else dg.AssetCheckSeverity.WARN
        )
        assert evaluation.description == evaluation.metadata["message"].value
    stale = found["daemon_heartbeat"].metadata
    assert stale["value"].value == pytest.approx(400, abs=5)
    assert stale["threshold"].value == "warn >= 120, fail >= 300"
    unknown = found["inbox_backlog"].metadata
    assert unknown["value"].value == "n/a"
    assert str(unknown["message"].value).startswith("Not applicable: the inbox ")
    assert data.run_requests == []
    assert data.skip_message.startswith("Health fail: ")
    assert "1 fail" in data.skip_message and "1 warn" in data.skip_message


def test_reported_evaluations_are_stored_with_their_history(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_with(monkeypatch)
    clock = Clock()
    definitions = build_health_definitions(settings, clock=clock)
    beat(instance, clock.now - 400)
    key = dg.AssetCheckKey(HEALTH_ASSET, "daemon_heartbeat")

    first = tick(definitions, instance, None)
    for event in first.asset_events:  # what the daemon does with a tick's asset events
        instance.report_runless_asset_event(event)
    beat(instance, clock.now)
    second = tick(definitions, instance, first.cursor)
    for event in second.asset_events:
        instance.report_runless_asset_event(event)

    storage = instance.event_log_storage
    history = storage.get_asset_check_execution_history(key, limit=10)
    assert [record.status.value for record in history] == ["SUCCEEDED", "FAILED"]
    assert [stored_status(record) for record in history] == ["pass", "fail"]
    assert stored_value(history[1]) == pytest.approx(400, abs=5)
    latest = storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(HEALTH_ASSET, name) for name in CHECK_NAMES]
    )
    assert set(latest) == {dg.AssetCheckKey(HEALTH_ASSET, n) for n in CHECK_NAMES}
    assert latest[key].status.value == "SUCCEEDED"


def test_the_multi_check_run_by_hand_stores_every_check(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_with(monkeypatch)
    beat(instance, time.time() - 200)  # warn
    health = build_health_definitions(settings)
    job = dg.define_asset_job(
        "health_by_hand", selection=dg.AssetSelection.checks_for_assets(HEALTH_ASSET)
    )
    definitions = dg.Definitions.merge(health, dg.Definitions(jobs=[job]))

    result = definitions.resolve_job_def("health_by_hand").execute_in_process(instance=instance)

    assert result.success  # a failing check is a result, not a failed run
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert list(checks) == CHECK_NAMES
    assert checks["daemon_heartbeat"].metadata["status"].value == "warn"
    assert not checks["daemon_heartbeat"].passed
    stored = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(HEALTH_ASSET, "daemon_heartbeat")]
    )
    [record] = stored.values()
    assert record.run_id == result.run_id
    assert record.status.value == "FAILED"


def test_alerts_go_out_once_per_transition_and_again_after_the_renotify_interval(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_with(monkeypatch, alert_webhook_url=webhook.url, alert_renotify_seconds=600)
    clock = Clock()
    t0 = clock.now
    definitions = build_health_definitions(settings, clock=clock)
    beat(instance, t0)

    def at(seconds: float, cursor: str | None) -> tuple[Any, list[dict[str, Any]]]:
        clock.now = t0 + seconds
        before = len(webhook.delivered)
        data = tick(definitions, instance, cursor)
        assert HealthCursor.parse(data.cursor).pending == []
        return data, webhook.delivered[before:]

    healthy, posted = at(10, None)
    assert posted == []
    assert status(evaluations(healthy)["daemon_heartbeat"]) == "pass"

    failing, posted = at(400, healthy.cursor)
    assert [(p["check"], p["previous"], p["status"], p["reminder"]) for p in posted] == [
        ("daemon_heartbeat", "pass", "fail", False)
    ]
    assert posted[0]["value"] == pytest.approx(400)
    assert posted[0]["threshold"] == "warn >= 120, fail >= 300"
    assert posted[0]["at"] == t0 + 400
    assert "1 alert(s)" in failing.skip_message

    still, posted = at(450, failing.cursor)
    assert posted == []
    assert status(evaluations(still)["daemon_heartbeat"]) == "fail"
    almost, posted = at(400 + 599, still.cursor)
    assert posted == []

    reminded, posted = at(400 + 600, almost.cursor)
    assert [(p["check"], p["status"], p["reminder"]) for p in posted] == [
        ("daemon_heartbeat", "fail", True)
    ]
    assert posted[0]["text"].startswith("Health check daemon_heartbeat still fail:")

    beat(instance, t0 + 1000)
    recovered, posted = at(1010, reminded.cursor)
    assert [(p["check"], p["previous"], p["status"]) for p in posted] == [
        ("daemon_heartbeat", "fail", "pass")
    ]
    assert posted[0]["text"].startswith("Health check daemon_heartbeat recovered: pass")

    _, posted = at(1070, recovered.cursor)
    assert posted == []
    assert len(webhook.attempts) == 3


def test_a_webhook_that_times_out_keeps_the_alert_pending_until_it_answers(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_with(monkeypatch, alert_webhook_url=webhook.url, alert_timeout_seconds=0.5)
    clock = Clock()
    definitions = build_health_definitions(settings, clock=clock)
    beat(instance, clock.now - 400)
    webhook.delay = 2.0

    started = time.monotonic()
    slow = tick(definitions, instance, None)  # does not raise

    assert time.monotonic() - started < 1.9
    assert len(webhook.attempts) == 1 and webhook.delivered == []
    [pending] = HealthCursor.parse(slow.cursor).pending
    assert (pending["check"], pending["status"]) == ("daemon_heartbeat", "fail")
    assert status(evaluations(slow)["daemon_heartbeat"]) == "fail"  # reported all the same

    webhook.delay = 0.0
    clock.now += 60
    answered = tick(definitions, instance, slow.cursor)

    assert webhook.delivered == [pending]
    assert HealthCursor.parse(answered.cursor).pending == []
    clock.now += 60
    tick(definitions, instance, answered.cursor)
    assert webhook.delivered == [pending]


def test_a_webhook_that_refuses_keeps_alerts_pending_and_the_sensor_running(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Webhook() as gone:
        url = gone.url
    settings = settings_with(monkeypatch, alert_webhook_url=url)
    clock = Clock()
    definitions = build_health_definitions(settings, clock=clock)
    beat(instance, clock.now - 400)

    first = tick(definitions, instance, None)
    beat(instance, clock.now)
    clock.now += 60
    second = tick(definitions, instance, first.cursor)

    pending = HealthCursor.parse(second.cursor).pending
    assert [(p["status"], p["previous"]) for p in pending] == [("fail", None), ("pass", "fail")]
    assert list(evaluations(second)) == CHECK_NAMES


def test_the_webhook_url_is_never_written_to_a_file(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = settings_with(monkeypatch, alert_webhook_url=webhook.url, alert_timeout_seconds=0.5)
    assert WEBHOOK_SECRET not in repr(settings) and WEBHOOK_SECRET not in str(settings)
    clock = Clock()
    definitions = build_health_definitions(settings, clock=clock)
    beat(instance, clock.now - 400)
    webhook.delay = 2.0  # the alert stays pending, in the cursor

    data = tick(definitions, instance, None)
    save_sensor_cursor(instance, "health_sensor", data.cursor)  # as the daemon stores it
    for event in data.asset_events:
        instance.report_runless_asset_event(event)

    assert HealthCursor.parse(data.cursor).pending
    assert WEBHOOK_SECRET not in data.cursor and "127.0.0.1" not in data.cursor
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "schedules.db" for p in written)
    for path in written:
        content = path.read_bytes()
        assert WEBHOOK_SECRET.encode() not in content, path
        assert webhook.url.encode() not in content, path


def test_checks_that_cannot_be_evaluated_are_reported_and_the_sensor_carries_on(
    settings: HiveSettings,
    instance: dg.DagsterInstance,
    daemon: psutil.Process,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_with(monkeypatch)
    settings.resolved_inbox_dir.mkdir(parents=True)
    save_sensor_cursor(instance, "inbox_sensor", "{not json")
    definitions = build_health_definitions(settings)

    data = tick(definitions, instance, None)

    found = evaluations(data)
    assert list(found) == CHECK_NAMES
    for name in ("inbox_backlog", "open_circuits"):
        assert status(found[name]) == "unknown"
        assert not found[name].passed
        assert str(found[name].description).startswith("Could not be evaluated: ValidationError")
    assert "unknown" in data.skip_message
