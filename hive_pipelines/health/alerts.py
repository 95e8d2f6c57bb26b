"""Alerts on health changes: once per transition, again only after the re-notify interval.

The alert state lives in the health sensor's cursor. An alert that could not be delivered
(a webhook down or slow) stays pending in the cursor and is sent again on the next tick,
up to MAX_PENDING alerts; the oldest are dropped past that, and the drop is logged.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from pydantic import BaseModel, Field

from hive_pipelines.health.checks import CheckResult

logger = logging.getLogger(__name__)

MAX_PENDING = 100
QUIET = {"pass", "unknown"}


class CheckState(BaseModel):
    status: str
    since: float
    notified_at: float | None = None


class HealthCursor(BaseModel):
    checks: dict[str, CheckState] = Field(default_factory=dict)
    pending: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> HealthCursor:
        """The cursor, or a fresh one (logged) if it cannot be read: health never breaks."""
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValueError as exc:
            logger.warning("Health sensor cursor unreadable, starting afresh: %s", exc)
            return cls()


def transitions(
    results: list[CheckResult], cursor: HealthCursor, now: float, renotify_seconds: float
) -> tuple[list[dict[str, Any]], HealthCursor]:
    """The alerts this evaluation owes, and the cursor that remembers them.

    A status change is announced once (a recovery to pass too). A check that stays in warn
    or fail is announced again once `renotify_seconds` have passed since the last alert.
    The first evaluation of a check announces it only when it does not pass, and a move
    from unknown to pass (a source appearing) is not news. Checks that no longer report
    (a flow with no run in the window) are forgotten, so their next failure is news again.
    """
    alerts: list[dict[str, Any]] = []
    checks = {r.key: cursor.checks[r.key] for r in results if r.key in cursor.checks}
    for result in results:
        before = checks.get(result.key)
        changed = before is None or before.status != result.status
        # Starting out passing or unknown, or a source appearing (unknown to pass), is no news.
        quiet = (before is None or before.status == "unknown") and result.status in QUIET
        if quiet:
            if changed:
                checks[result.key] = CheckState(status=result.status, since=now)
            continue
        if changed:
            alerts.append(_alert(result, None if before is None else before.status, now))
            checks[result.key] = CheckState(status=result.status, since=now, notified_at=now)
            continue
        assert before is not None
        stale = before.notified_at is None or now - before.notified_at >= renotify_seconds
        if result.status in {"warn", "fail"} and stale:
            alerts.append(_alert(result, before.status, now, reminder=True))
            checks[result.key] = before.model_copy(update={"notified_at": now})
    return alerts, cursor.model_copy(update={"checks": checks})


def deliver(
    alerts: list[dict[str, Any]], cursor: HealthCursor, url: str | None, timeout: float
) -> tuple[int, HealthCursor]:
    """Log every alert; POST pending and new ones to the webhook, keeping the undelivered."""
    queue = [*cursor.pending, *alerts]
    for alert in alerts:
        logger.warning("Health alert: %s", alert["text"])
    if url is None:
        return len(queue), cursor.model_copy(update={"pending": []})
    undelivered: list[dict[str, Any]] = []
    for alert in queue:
        # After one failure the rest wait for the next tick: a slow webhook then costs one
        # timeout per tick, not one per alert, and the tick stays within its deadline.
        if undelivered or not post_json(url, alert, timeout):
            undelivered.append(alert)
    sent = len(queue) - len(undelivered)
    if len(undelivered) > MAX_PENDING:
        logger.warning("Dropping %d undelivered alerts", len(undelivered) - MAX_PENDING)
        undelivered = undelivered[-MAX_PENDING:]
    return sent, cursor.model_copy(update={"pending": undelivered})


def post_json(url: str, payload: dict[str, Any], timeout: float) -> bool:
    """POST `payload` as JSON; False (logged) on any failure or a non-2xx answer."""
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            ok = 200 <= answer.status < 300
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        logger.warning("Alert webhook failed: %s", exc)
        return False
    if not ok:
        logger.warning("Alert webhook answered %s", answer.status)
    return ok


def _alert(
    result: CheckResult, previous: str | None, now: float, reminder: bool = False
) -> dict[str, Any]:
    what = "still" if reminder else ("recovered:" if result.status == "pass" else "now")
    text = f"Health check {result.key} {what} {result.status}: {result.message}"
    return {
        "kind": "health",
        "check": result.name,
        "subject": result.subject,
        "status": result.status,
        "previous": previous,
        "value": result.value,
        "threshold": result.threshold,
        "message": result.message,
        "reminder": reminder,
        "at": now,
        "text": text,
    }
