"""Which registry partitions and runs are past their retention, on a clock the caller gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def cutoff_day(now: float, retention_days: int) -> str:
    """The oldest day kept: today (UTC) and the `retention_days - 1` days before it."""
    today = datetime.fromtimestamp(now, UTC).date()
    return (today - timedelta(days=retention_days - 1)).isoformat()


def expired_days(days: list[str], now: float, retention_days: int) -> list[str]:
    """Days older than the retention window, oldest first. `days` must be sorted; the
    scan stops at the first kept day, so its cost grows with what is removed."""
    cutoff = cutoff_day(now, retention_days)
    expired = []
    for day in days:
        if day >= cutoff:
            break
        expired.append(day)
    return expired


def run_cutoff(now: float, retention_days: int) -> float:
    """Runs that ended before this timestamp are past their retention."""
    return now - retention_days * 86_400
