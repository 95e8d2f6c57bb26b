"""Alert transitions (pure) and their delivery to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from hive_pipelines.health.alerts import (
    MAX_PENDING,
    CheckState,
    HealthCursor,
    deliver,
    post_json,
    transitions,
)
from hive_pipelines.health.checks import CheckResult
from hive_pipelines_tests.health import WEBHOOK_SECRET, Webhook, closed_port_url

T0 = 1_800_000_000.0
RENOTIFY = 3600.0


def result(status: str, name: str = "free_disk", subject: str | None = None) -> CheckResult:
    value = {"pass": 0.5, "warn": 0.08, "fail": 0.01, "unknown": None}[status]
    return CheckResult(
        name,
        status,  # type: ignore[arg-type]
        value,
        "warn <= 0.1, fail <= 0.05",
        f"{status} reading",
        subject,
    )


def step(
    cursor: HealthCursor, now: float, *results: CheckResult
) -> tuple[list[dict[str, object]], HealthCursor]:
    """One evaluation, with the cursor passed through JSON as the sensor stores it."""
    alerts, after = transitions(list(results), cursor, now, RENOTIFY)
    return alerts, HealthCursor.parse(after.model_dump_json())


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.mark.parametrize("status", ["pass", "unknown"])
def test_a_check_that_starts_passing_or_unknown_is_not_announced(status: str) -> None:
    alerts, cursor = step(HealthCursor(), T0, result(status))

    assert alerts == []
    assert cursor.checks == {"free_disk": CheckState(status=status, since=T0)}


def test_a_check_that_starts_failing_is_announced_once() -> None:
    alerts, cursor = step(HealthCursor(), T0, result("fail"))

    assert alerts == [
        {
            "kind": "health",
            "check": "free_disk",
            "subject": None,
            "status": "fail",
            "previous": None,
            "value": 0.01,
            "threshold": "warn <= 0.1, fail <= 0.05",
            "message": "fail reading",
            "reminder": False,
            "at": T0,
            "text": "Health check free_disk now fail: fail reading",
        }
    ]
    assert cursor.checks["free_disk"] == CheckState(status="fail", since=T0, notified_at=T0)
    again, _ = step(cursor, T0 + 60, result("fail"))
    assert again == []


def test_each_change_is_announced_once_and_a_recovery_too() -> None:
    cursor = HealthCursor()
    seen: list[tuple[object, ...]] = []
    for offset, status in enumerate(["pass", "warn", "warn", "fail", "fail", "pass", "pass"]):
        alerts, cursor = step(cursor, T0 + offset, result(status))
        seen.extend((a["previous"], a["status"], a["reminder"]) for a in alerts)

    assert seen == [("pass", "warn", False), ("warn", "fail", False), ("fail", "pass", False)]
    _, cursor = step(cursor, T0 + 10, result("pass"))
    assert cursor.checks["free_disk"].since == T0 + 5


def test_recovery_text_says_recovered() -> None:
    _, cursor = step(HealthCursor(), T0, result("fail"))

    [alert], _ = step(cursor, T0 + 1, result("pass"))

    assert alert["text"] == "Health check free_disk recovered: pass: pass reading"


def test_a_check_that_stays_failing_is_reminded_after_the_renotify_interval_only() -> None:
    _, cursor = step(HealthCursor(), T0, result("fail"))

    early, cursor = step(cursor, T0 + RENOTIFY - 1, result("fail"))
    [reminder], cursor = step(cursor, T0 + RENOTIFY, result("fail"))
    after, cursor = step(cursor, T0 + RENOTIFY + 60, result("fail"))
    [second], cursor = step(cursor, T0 + 2 * RENOTIFY, result("fail"))

    assert early == [] and after == []
    assert (reminder["reminder"], reminder["previous"], reminder["status"]) == (
        True,
        "fail",
        "fail",
    )
    assert reminder["text"] == "Health check free_disk still fail: fail reading"
    assert second["reminder"] is True
    state = cursor.checks["free_disk"]
    assert (state.since, state.notified_at) == (T0, T0 + 2 * RENOTIFY)


def test_a_passing_check_is_never_reminded() -> None:
    _, cursor = step(HealthCursor(), T0, result("fail"))
    _, cursor = step(cursor, T0 + 1, result("pass"))

    alerts, _ = step(cursor, T0 + 10 * RENOTIFY, result("pass"))

    assert alerts == []


def test_a_check_becoming_unknown_is_announced() -> None:
    _, cursor = step(HealthCursor(), T0, result("pass"))

    [alert], _ = step(cursor, T0 + 1, result("unknown"))

    assert (alert["previous"], alert["status"], alert["value"]) == ("pass", "unknown", None)


def test_each_flow_of_a_per_flow_check_has_its_own_state() -> None:
    a_fails = result("fail", "failure_rate", "a")
    b_passes = result("pass", "failure_rate", "b")
    [first], cursor = step(HealthCursor(), T0, a_fails, b_passes)

    [second], cursor = step(cursor, T0 + 1, a_fails, result("fail", "failure_rate", "b"))

    assert (first["check"], first["subject"]) == ("failure_rate", "a")
    assert (second["subject"], second["previous"]) == ("b", "pass")
    assert "Health check failure_rate[b] now fail" in str(second["text"])
    assert set(cursor.checks) == {"failure_rate[a]", "failure_rate[b]"}


def test_transitions_keep_the_pending_alerts() -> None:
    pending = HealthCursor(pending=[{"text": "older"}])

    _, cursor = step(pending, T0, result("fail"))

    assert cursor.pending == [{"text": "older"}]


# -- delivery ----------------------------------------------------------------------------


def alerts_for(*statuses: str) -> list[dict[str, object]]:
    cursor, found = HealthCursor(), []
    for index, status in enumerate(statuses):
        alerts, cursor = step(cursor, T0, result(status, f"check_{index}"))
        found.extend(alerts)
    return found


def test_alerts_are_posted_as_json_to_the_webhook(webhook: Webhook) -> None:
    alerts = alerts_for("fail", "warn")

    sent, cursor = deliver(alerts, HealthCursor(), webhook.url, timeout=5)

    assert sent == 2
    assert cursor.pending == []
    assert webhook.delivered == alerts
    assert webhook.content_types == ["application/json"] * 2
    assert webhook.paths == [f"/hooks/{WEBHOOK_SECRET}"] * 2


def test_alerts_are_logged_with_or_without_a_webhook(caplog: pytest.LogCaptureFixture) -> None:
    alerts = alerts_for("fail")
    caplog.set_level(logging.WARNING, logger="hive_pipelines.health.alerts")

    sent, cursor = deliver(alerts, HealthCursor(pending=[{"text": "old"}]), None, timeout=5)

    assert sent == 2
    assert cursor.pending == []  # nothing to retry without a webhook
    assert [r.getMessage() for r in caplog.records] == [
        "Health alert: Health check check_0 now fail: fail reading"
    ]


@pytest.mark.parametrize("status", [500, 404])
def test_an_error_answer_keeps_the_alert_pending(webhook: Webhook, status: int) -> None:
    webhook.status = status
    alerts = alerts_for("fail")

    sent, cursor = deliver(alerts, HealthCursor(), webhook.url, timeout=5)

    assert sent == 0
    assert cursor.pending == alerts
    assert webhook.attempts == alerts and webhook.delivered == []


def test_pending_alerts_go_out_first_once_the_webhook_answers(webhook: Webhook) -> None:
    older, newer = alerts_for("fail"), alerts_for("warn", "warn")[1:]
    _, cursor = deliver(older, HealthCursor(), closed_port_url(), timeout=5)
    assert cursor.pending == older

    sent, cursor = deliver(newer, cursor, webhook.url, timeout=5)

    assert sent == 2
    assert cursor.pending == []
    assert webhook.delivered == [*older, *newer]


def test_a_refused_connection_returns_at_once(caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()

    assert not post_json(closed_port_url(), {"kind": "health"}, timeout=5)

    assert time.monotonic() - started < 2
    assert "Alert webhook failed" in caplog.text


def test_a_slow_webhook_is_given_up_after_the_timeout(webhook: Webhook) -> None:
    webhook.delay = 2.0
    started = time.monotonic()

    assert not post_json(webhook.url, {"kind": "health"}, timeout=0.3)

    assert time.monotonic() - started < 1.5
    assert webhook.attempts == [{"kind": "health"}]


def test_a_slow_webhook_costs_one_timeout_per_delivery_not_one_per_alert(
    webhook: Webhook,
) -> None:
    """The sensor's evaluation has a deadline of its own (60 s by default in Dagster): with
    many alerts queued, waiting out the timeout for each would exceed it, and the cursor
    holding the pending alerts would then never be saved."""
    webhook.delay = 3.0
    alerts = alerts_for(*["fail"] * 8)
    started = time.monotonic()

    sent, cursor = deliver(alerts, HealthCursor(), webhook.url, timeout=0.3)

    assert time.monotonic() - started < 2.0
    assert sent == 0
    assert cursor.pending == alerts  # kept in order for the next tick
    assert len(webhook.attempts) == 1


def test_at_most_max_pending_alerts_are_kept_and_the_drop_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queued = [{"text": f"alert {n}"} for n in range(MAX_PENDING + 5)]

    sent, cursor = deliver([], HealthCursor(pending=queued), closed_port_url(), timeout=5)

    assert sent == 0
    assert cursor.pending == queued[5:]
    assert "Dropping 5 undelivered alerts" in caplog.text


def test_a_source_appearing_unknown_to_pass_is_not_announced() -> None:
    # Regression: a check unknown at start-up (no heartbeat yet) sent "recovered" on passing.
    alerts_first, cursor = step(HealthCursor(), T0, result("unknown"))
    alerts_then, cursor = step(cursor, T0 + 1, result("pass"))

    assert alerts_first == [] and alerts_then == []
    assert cursor.checks["free_disk"].status == "pass"


def test_a_flow_gone_from_the_window_is_forgotten_so_its_next_failure_is_news() -> None:
    # Regression: a flow's failing state stayed in the cursor after its runs left the
    # window, so its next failure came out as a "still fail" reminder.
    _, cursor = step(HealthCursor(), T0, result("fail", "failure_rate", "etl"))
    _, cursor = step(cursor, T0 + 1, result("pass", "failure_rate"))

    alerts, _ = step(cursor, T0 + 2, result("fail", "failure_rate", "etl"))

    assert "failure_rate[etl]" not in cursor.checks
    assert [(a["previous"], a["status"], a["reminder"]) for a in alerts] == [(None, "fail", False)]


def test_an_unreadable_cursor_starts_afresh_instead_of_failing_the_sensor() -> None:
    assert HealthCursor.parse("{not json") == HealthCursor()
    assert HealthCursor.parse('{"checks": 3}') == HealthCursor()
