"""The checks as plain Python: thresholds, statuses, unknown readings, and the summary.

`FixedSources` is a `HealthSources` of our own protocol that returns set readings, or raises
from the readings named in `broken`; the same checks on real instances and folders are in
hive_pipelines_tests/defs/health/test_sources.py.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hive_pipelines.health.checks import (
    CHECK_NAMES,
    CheckResult,
    HealthSources,
    HealthThresholds,
    NotApplicable,
    Threshold,
    by_check,
    evaluate,
    overall,
)
from hive_pipelines.settings import HiveSettings

NOW = 1_800_000_000.0
ALL_CHECKS = [
    "failure_rate",
    "oldest_queued_run",
    "runs_in_progress",
    "inbox_backlog",
    "inbox_oldest_event",
    "quarantine_growth",
    "open_circuits",
    "registry_size",
    "registry_partitions",
    "last_pruning",
    "storage_size",
    "free_disk",
    "daemon_heartbeat",
    "daemon_memory",
]


@dataclass
class FixedSources:
    """Healthy readings unless a test sets others; names in `broken` raise `error`."""

    disk: Path
    outcomes: dict[str, tuple[int, int]] = field(default_factory=dict)
    queued_age: float = 0.0
    in_progress: int = 0
    backlog: tuple[int, float] = (0, 0.0)
    quarantined: int = 0
    circuits: list[str] = field(default_factory=list)
    registry: tuple[int, int, int] = (1000, 3, 30)
    prune_end: float | None = NOW - 3600
    storage: int = 1 << 20
    heartbeats: dict[str, float] = field(default_factory=lambda: {"SENSOR": 10.0})
    rss: int = 200 << 20
    broken: set[str] = field(default_factory=set)
    error: Exception = field(default_factory=lambda: OSError("the reading failed"))
    since_seen: list[float] = field(default_factory=list)

    def _read(self, name: str) -> None:
        if name in self.broken:
            raise self.error

    def flow_run_outcomes(self, since: float) -> dict[str, tuple[int, int]]:
        self._read("flow_run_outcomes")
        self.since_seen.append(since)
        return self.outcomes

    def oldest_queued_age(self, now: float) -> float:
        self._read("oldest_queued_age")
        return self.queued_age

    def runs_in_progress(self) -> int:
        self._read("runs_in_progress")
        return self.in_progress

    def inbox_backlog(self, now: float) -> tuple[int, float]:
        self._read("inbox_backlog")
        return self.backlog

    def quarantined_since(self, since: float) -> int:
        self._read("quarantined_since")
        return self.quarantined

    def open_circuits(self) -> list[str]:
        self._read("open_circuits")
        return self.circuits

    def registry_stats(self) -> tuple[int, int, int]:
        self._read("registry_stats")
        return self.registry

    def last_prune_end(self) -> float | None:
        self._read("last_prune_end")
        return self.prune_end

    def storage_bytes(self) -> int:
        self._read("storage_bytes")
        return self.storage

    def disk_path(self) -> Path:
        self._read("disk_path")
        return self.disk

    def heartbeat_ages(self, now: float) -> dict[str, float]:
        self._read("heartbeat_ages")
        return self.heartbeats

    def daemon_rss(self) -> int:
        self._read("daemon_rss")
        return self.rss


@pytest.fixture
def sources(tmp_path: Path) -> FixedSources:
    return FixedSources(disk=tmp_path)


@pytest.fixture
def limits() -> HealthThresholds:
    # Free disk can be anything on a test machine: only "none free" fails here.
    return HealthThresholds(free_disk_fraction=Threshold(warn=0.0, fail=0.0, below=True))


def named(results: list[CheckResult], name: str) -> CheckResult:
    [result] = [r for r in results if r.name == name]
    return result


def test_the_fourteen_checks_in_their_fixed_order() -> None:
    assert CHECK_NAMES == ALL_CHECKS


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "pass"), (9.99, "pass"), (10.0, "warn"), (49.9, "warn"), (50.0, "fail"), (1e9, "fail")],
)
def test_a_threshold_warns_and_fails_at_or_past_its_limits(value: float, status: str) -> None:
    assert Threshold(warn=10, fail=50).status(value) == status


@pytest.mark.parametrize(
    ("value", "status"),
    [(1.0, "pass"), (0.11, "pass"), (0.10, "warn"), (0.06, "warn"), (0.05, "fail"), (0.0, "fail")],
)
def test_a_below_threshold_warns_and_fails_at_or_under_its_limits(
    value: float, status: str
) -> None:
    assert Threshold(warn=0.10, fail=0.05, below=True).status(value) == status


def test_thresholds_describe_themselves() -> None:
    assert Threshold(warn=600, fail=3600).describe() == "warn >= 600, fail >= 3,600"
    assert Threshold(warn=0.1, fail=0.05, below=True).describe() == "warn <= 0.1, fail <= 0.05"


def test_healthy_readings_pass_every_check(sources: FixedSources, limits: HealthThresholds) -> None:
    results = evaluate(sources, limits, NOW)

    assert [r.name for r in results] == ALL_CHECKS
    assert {r.name: r.status for r in results} == dict.fromkeys(ALL_CHECKS, "pass")
    assert all(r.value is not None and r.threshold for r in results)
    assert overall(results) == "pass"


@pytest.mark.parametrize(
    ("reading", "value", "name", "status"),
    [
        ("queued_age", 600.0, "oldest_queued_run", "warn"),
        ("queued_age", 3600.0, "oldest_queued_run", "fail"),
        ("in_progress", 20, "runs_in_progress", "warn"),
        ("in_progress", 50, "runs_in_progress", "fail"),
        ("backlog", (100, 0.0), "inbox_backlog", "warn"),
        ("backlog", (1000, 0.0), "inbox_backlog", "fail"),
        ("backlog", (1, 600.0), "inbox_oldest_event", "warn"),
        ("backlog", (1, 3600.0), "inbox_oldest_event", "fail"),
        ("quarantined", 10, "quarantine_growth", "warn"),
        ("quarantined", 100, "quarantine_growth", "fail"),
        ("circuits", ["a"], "open_circuits", "warn"),
        ("circuits", ["a", "b", "c"], "open_circuits", "fail"),
        ("registry", (1 << 30, 0, 30), "registry_size", "warn"),
        ("registry", (5 << 30, 0, 30), "registry_size", "fail"),
        ("registry", (0, 32, 30), "registry_partitions", "warn"),
        ("registry", (0, 60, 30), "registry_partitions", "fail"),
        ("prune_end", NOW - 36 * 3600, "last_pruning", "warn"),
        ("prune_end", NOW - 72 * 3600, "last_pruning", "fail"),
        ("storage", 10 << 30, "storage_size", "warn"),
        ("storage", 50 << 30, "storage_size", "fail"),
        ("heartbeats", {"SENSOR": 1.0, "SCHEDULER": 120.0}, "daemon_heartbeat", "warn"),
        ("heartbeats", {"SENSOR": 300.0, "SCHEDULER": 1.0}, "daemon_heartbeat", "fail"),
        ("rss", 1 << 30, "daemon_memory", "warn"),
        ("rss", 2 << 30, "daemon_memory", "fail"),
    ],
)
def test_each_check_warns_and_fails_at_its_default_thresholds(
    sources: FixedSources,
    limits: HealthThresholds,
    reading: str,
    value: object,
    name: str,
    status: str,
) -> None:
    setattr(sources, reading, value)

    results = evaluate(sources, limits, NOW)

    assert named(results, name).status == status
    others = [r for r in results if r.name != name]
    assert {r.status for r in others} == {"pass"}
    assert overall(results) == status


def test_free_disk_compares_the_free_share_of_the_real_disk(
    sources: FixedSources, tmp_path: Path
) -> None:
    usage = shutil.disk_usage(tmp_path)
    free = usage.free / usage.total
    warn_above = HealthThresholds(
        free_disk_fraction=Threshold(warn=free + 0.05, fail=max(free - 0.05, 0.0), below=True)
    )

    result = named(evaluate(sources, warn_above, NOW), "free_disk")

    assert result.status == "warn"
    assert result.value == pytest.approx(free, abs=0.01)
    assert f"of {usage.total:,} bytes free" in result.message


def test_registry_partitions_counts_the_days_beyond_the_retention(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.registry = (0, 34, 30)

    result = named(evaluate(sources, limits, NOW), "registry_partitions")

    assert (result.status, result.value) == ("warn", 4.0)
    assert result.message == "34 day(s) stored for a retention of 30."


def test_failure_rate_judges_each_flow_over_the_window(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.outcomes = {"steady": (0, 5), "shaky": (1, 4), "broken": (3, 3), "new": (2, 2)}

    results = [r for r in evaluate(sources, limits, NOW) if r.name == "failure_rate"]

    assert sources.since_seen == [NOW - 24 * 3600]
    assert [(r.subject, r.status, r.value) for r in results] == [
        ("broken", "fail", 1.0),
        ("new", "pass", 1.0),  # two runs: too few to judge
        ("shaky", "warn", 0.25),
        ("steady", "pass", 0.0),
    ]
    assert [r.key for r in results][:2] == ["failure_rate[broken]", "failure_rate[new]"]
    assert results[1].message == "2 of 2 runs failed in the last 24 h. Too few runs to judge."


def test_failure_rate_without_runs_in_the_window_passes(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    result = named(evaluate(sources, limits, NOW), "failure_rate")

    assert (result.status, result.value, result.subject) == ("pass", 0.0, None)
    assert result.message == "No flow run ended in the window."


def test_by_check_gives_one_result_per_check_with_the_worst_flow(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.outcomes = {"steady": (0, 5), "shaky": (1, 4), "broken": (3, 3)}

    combined = by_check(evaluate(sources, limits, NOW))

    assert [r.name for r in combined] == ALL_CHECKS
    rate = combined[0]
    assert (rate.status, rate.value, rate.subject) == ("fail", 1.0, None)
    assert rate.message.startswith("broken: fail, 3 of 3 runs failed")
    assert "shaky: warn, 1 of 4 runs failed" in rate.message
    assert "steady: pass" in rate.message


def test_a_source_that_raises_makes_its_checks_unknown_with_the_reason(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.broken = {"inbox_backlog"}
    sources.error = PermissionError("inbox unreadable")

    results = evaluate(sources, limits, NOW)

    inbox = [r for r in results if r.name.startswith(("inbox", "quarantine"))]
    assert [r.name for r in inbox] == ["inbox_backlog", "inbox_oldest_event", "quarantine_growth"]
    for result in inbox:
        assert (result.status, result.value, result.threshold) == ("unknown", None, "")
        assert result.message == "Could not be evaluated: PermissionError: inbox unreadable"
    assert {r.status for r in results if r not in inbox} == {"pass"}
    assert overall(results) == "warn"


def test_a_reason_too_long_is_cut_to_500_characters(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.broken = {"daemon_rss"}
    sources.error = RuntimeError("x" * 2000)

    result = named(evaluate(sources, limits, NOW), "daemon_memory")

    assert result.status == "unknown"
    assert len(result.message) == 500


def test_every_source_raising_still_gives_every_check_and_never_raises(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.broken = {
        "flow_run_outcomes",
        "oldest_queued_age",
        "inbox_backlog",
        "open_circuits",
        "registry_stats",
        "storage_bytes",
        "heartbeat_ages",
        "daemon_rss",
    }
    sources.error = ValueError("nothing can be read")

    results = evaluate(sources, limits, NOW)

    assert [r.name for r in results] == ALL_CHECKS
    assert {r.status for r in results} == {"unknown"}
    assert overall(results) == "warn"


def test_not_applicable_says_so(sources: FixedSources, limits: HealthThresholds) -> None:
    sources.broken = {"daemon_rss"}
    sources.error = NotApplicable("no dagster-daemon process runs on this host")

    result = named(evaluate(sources, limits, NOW), "daemon_memory")

    assert result.status == "unknown"
    assert result.message == "Not applicable: no dagster-daemon process runs on this host"


def test_no_heartbeat_and_no_pruning_yet_are_unknown(
    sources: FixedSources, limits: HealthThresholds
) -> None:
    sources.heartbeats = {}
    sources.prune_end = None

    results = evaluate(sources, limits, NOW)

    heartbeat, pruning = named(results, "daemon_heartbeat"), named(results, "last_pruning")
    assert (heartbeat.status, heartbeat.value) == ("unknown", None)
    assert heartbeat.message == (
        "Not applicable: no daemon heartbeat recorded; is the daemon running?"
    )
    assert (pruning.status, pruning.value) == ("unknown", None)
    assert pruning.threshold == "warn >= 129,600, fail >= 259,200"
    assert pruning.message == "Not applicable: no pruning has succeeded yet."


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["pass", "pass"], "pass"),
        (["pass", "unknown"], "warn"),
        (["pass", "warn"], "warn"),
        (["warn", "fail", "unknown"], "fail"),
        ([], "pass"),
    ],
)
def test_overall_status(statuses: list[str], expected: str) -> None:
    results = [CheckResult("x", s, None, "", "") for s in statuses]  # type: ignore[arg-type]
    assert overall(results) == expected


def test_a_result_serialises_to_json(sources: FixedSources, limits: HealthThresholds) -> None:
    sources.outcomes = {"broken": (3, 3)}
    [result] = [r for r in evaluate(sources, limits, NOW) if r.name == "failure_rate"]

    assert json.loads(json.dumps(result.as_dict())) == {
        "name": "failure_rate",
        "status": "fail",
        "value": 1.0,
        "threshold": "warn >= 0.2, fail >= 0.5",
        "message": "3 of 3 runs failed in the last 24 h.",
        "subject": "broken",
        "applicable": True,
    }


def test_one_threshold_is_set_alone_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIVE_HEALTH__FAILURE_RATE__WARN", "0.3")
    monkeypatch.setenv("HIVE_HEALTH__FREE_DISK_FRACTION__FAIL", "0.02")

    health = HiveSettings().health

    assert health.failure_rate == Threshold(warn=0.3, fail=0.5)
    assert health.free_disk_fraction == Threshold(warn=0.10, fail=0.02, below=True)
    assert health.runs_in_progress == Threshold(warn=20, fail=50)


def test_fixed_sources_implement_the_protocol(sources: FixedSources) -> None:
    typed: HealthSources = sources
    assert typed.runs_in_progress() == 0


def test_checks_not_applicable_yet_leave_a_fresh_deployment_healthy() -> None:
    # Regression: with no pruning yet, no inbox and no daemon on the host, `hive health`
    # exited 1 (degraded) on every fresh install, failing a container's health check.
    fresh = [
        CheckResult("free_disk", "pass", 0.5, "", "ok"),
        CheckResult("last_pruning", "unknown", None, "", "Not applicable: none", applicable=False),
    ]
    broken = [*fresh, CheckResult("storage_size", "unknown", None, "", "Could not be evaluated")]

    assert overall(fresh) == "pass"
    assert overall(broken) == "warn"
