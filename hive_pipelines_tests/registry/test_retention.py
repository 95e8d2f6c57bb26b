"""Which registry days and runs are past their retention, on a clock the tests give."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hive_pipelines.defs.registry.assets import registry_partitions
from hive_pipelines.registry.retention import cutoff_day, expired_days, run_cutoff
from hive_pipelines.settings import HiveSettings

NOON = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def days_before(last: date, count: int) -> list[str]:
    """`count` consecutive days ending on `last`, oldest first."""
    return [(last - timedelta(days=n)).isoformat() for n in range(count - 1, -1, -1)]


def test_cutoff_keeps_today_and_the_days_before_it() -> None:
    assert cutoff_day(NOON.timestamp(), 30) == "2026-02-14"
    assert cutoff_day(NOON.timestamp(), 1) == "2026-03-15"
    assert cutoff_day(NOON.timestamp(), 400) == "2025-02-09"


def test_cutoff_moves_at_midnight_utc() -> None:
    last_second = datetime(2026, 3, 15, 23, 59, 59, tzinfo=UTC).timestamp()
    midnight = datetime(2026, 3, 16, 0, 0, 0, tzinfo=UTC).timestamp()

    assert cutoff_day(last_second, 30) == "2026-02-14"
    assert cutoff_day(midnight, 30) == "2026-02-15"


def test_expired_days_are_the_oldest_beyond_the_window() -> None:
    days = days_before(date(2026, 3, 15), 400)

    expired = expired_days(days, NOON.timestamp(), 30)

    assert expired == days[:370]
    assert expired[-1] == "2026-02-13"
    assert expired_days(days, NOON.timestamp(), 400) == []
    assert expired_days([], NOON.timestamp(), 30) == []


def test_expired_days_with_gaps_and_future_days() -> None:
    days = ["2020-01-01", "2026-02-13", "2026-02-14", "2026-03-15", "2026-03-20"]

    assert expired_days(days, NOON.timestamp(), 30) == ["2020-01-01", "2026-02-13"]


def test_run_cutoff_is_the_retention_before_now() -> None:
    assert run_cutoff(NOON.timestamp(), 14) == NOON.timestamp() - 14 * 86_400
    assert datetime.fromtimestamp(run_cutoff(NOON.timestamp(), 1), UTC) == NOON - timedelta(days=1)


def test_registry_partitions_cover_exactly_the_kept_days() -> None:
    settings = HiveSettings(registry_retention_days=30)

    keys = registry_partitions(settings, NOON).get_partition_keys(current_time=NOON)

    assert keys == days_before(date(2026, 3, 15), 30)
    assert keys[0] == cutoff_day(NOON.timestamp(), 30)
    assert expired_days(keys, NOON.timestamp(), 30) == []
