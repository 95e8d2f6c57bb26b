"""Health checks: each turns one reading into a value, a threshold and a status.

The readings come from a `HealthSources` (the instance, the inbox, the registry, the disk,
the processes), so the same checks serve the health sensor and `hive health`. A check whose
reading fails reports `unknown` with the reason instead of raising: health must never be the
thing that breaks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

Status = Literal["pass", "warn", "fail", "unknown"]
SEVERITY = {"pass": 0, "unknown": 1, "warn": 1, "fail": 2}


class Threshold(BaseModel):
    """Warn at or past `warn`, fail at or past `fail`; `below` for readings where low is bad."""

    warn: float
    fail: float
    below: bool = False

    def status(self, value: float) -> Status:
        if self.below:
            return "fail" if value <= self.fail else "warn" if value <= self.warn else "pass"
        return "fail" if value >= self.fail else "warn" if value >= self.warn else "pass"

    def describe(self) -> str:
        sign = "<=" if self.below else ">="
        return f"warn {sign} {_number(self.warn)}, fail {sign} {_number(self.fail)}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 and float(value).is_integer() else f"{value:g}"


class HealthThresholds(BaseModel):
    """Every check's threshold; set one with e.g. HIVE_HEALTH__FAILURE_RATE__WARN=0.3."""

    failure_rate: Threshold = Threshold(warn=0.2, fail=0.5)
    failure_window_hours: float = Field(default=24.0, gt=0)
    failure_min_runs: int = Field(default=3, ge=1)
    oldest_queued_seconds: Threshold = Threshold(warn=600, fail=3600)
    runs_in_progress: Threshold = Threshold(warn=20, fail=50)
    inbox_backlog: Threshold = Threshold(warn=100, fail=1000)
    inbox_oldest_seconds: Threshold = Threshold(warn=600, fail=3600)
    quarantine_per_hour: Threshold = Threshold(warn=10, fail=100)
    open_circuits: Threshold = Threshold(warn=1, fail=3)
    registry_bytes: Threshold = Threshold(warn=1 << 30, fail=5 << 30)
    registry_partitions_over_retention: Threshold = Threshold(warn=2, fail=30)
    last_prune_age_seconds: Threshold = Threshold(warn=36 * 3600, fail=72 * 3600)
    storage_bytes: Threshold = Threshold(warn=10 << 30, fail=50 << 30)
    free_disk_fraction: Threshold = Threshold(warn=0.10, fail=0.05, below=True)
    heartbeat_age_seconds: Threshold = Threshold(warn=120, fail=300)
    daemon_rss_bytes: Threshold = Threshold(warn=1 << 30, fail=2 << 30)


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    value: float | None
    threshold: str
    message: str
    subject: str | None = None  # a flow, for per-flow checks
    applicable: bool = True  # False while the check's source does not exist yet

    @property
    def key(self) -> str:
        return self.name if self.subject is None else f"{self.name}[{self.subject}]"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NotApplicable(Exception):
    """The check's source does not exist (yet): reported as `unknown` with this reason."""


class HealthSources(Protocol):
    """The readings the checks need."""

    def flow_run_outcomes(self, since: float) -> dict[str, tuple[int, int]]: ...

    def oldest_queued_age(self, now: float) -> float: ...

    def runs_in_progress(self) -> int: ...

    def inbox_backlog(self, now: float) -> tuple[int, float]: ...

    def quarantined_since(self, since: float) -> int: ...

    def open_circuits(self) -> list[str]: ...

    def registry_stats(self) -> tuple[int, int, int]: ...

    def last_prune_end(self) -> float | None: ...

    def storage_bytes(self) -> int: ...

    def disk_path(self) -> Path: ...

    def heartbeat_ages(self, now: float) -> dict[str, float]: ...

    def daemon_rss(self) -> int: ...


def evaluate(sources: HealthSources, limits: HealthThresholds, now: float) -> list[CheckResult]:
    """Every check, in a fixed order; never raises."""
    results: list[CheckResult] = []
    for names, check in CHECKS:
        try:
            results.extend(check(sources, limits, now))
        except NotApplicable as reason:
            message = f"Not applicable: {reason}"
            results.extend(
                CheckResult(name, "unknown", None, "", message, applicable=False) for name in names
            )
        except Exception as exc:  # a failing reading is a result, not a crash
            message = f"Could not be evaluated: {type(exc).__name__}: {exc}"[:500]
            results.extend(CheckResult(name, "unknown", None, "", message) for name in names)
    return results


def overall(results: list[CheckResult]) -> Status:
    """fail if any fails; warn if any warns or cannot be read; else pass. A check that is
    not applicable yet (no inbox, no pruning so far, no daemon on this host) counts for
    nothing, so a fresh deployment is healthy."""
    worst = max((SEVERITY[r.status] for r in results if r.applicable), default=0)
    return "fail" if worst == 2 else "warn" if worst == 1 else "pass"


def _failure_rate(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    since = now - t.failure_window_hours * 3600
    outcomes = s.flow_run_outcomes(since)
    if not outcomes:
        return [_result("failure_rate", 0.0, t.failure_rate, "No flow run ended in the window.")]
    results = []
    for flow, (failed, total) in sorted(outcomes.items()):
        rate = failed / total
        message = f"{failed} of {total} runs failed in the last {t.failure_window_hours:g} h."
        if total < t.failure_min_runs:
            results.append(
                CheckResult(
                    "failure_rate",
                    "pass",
                    rate,
                    t.failure_rate.describe(),
                    message + " Too few runs to judge.",
                    flow,
                )
            )
        else:
            results.append(_result("failure_rate", rate, t.failure_rate, message, flow))
    return results


def _queue(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    age = s.oldest_queued_age(now)
    running = s.runs_in_progress()
    return [
        _result(
            "oldest_queued_run",
            age,
            t.oldest_queued_seconds,
            f"The oldest queued run has waited {age:.0f} s.",
        ),
        _result("runs_in_progress", running, t.runs_in_progress, f"{running} run(s) in progress."),
    ]


def _inbox(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    pending, oldest = s.inbox_backlog(now)
    quarantined = s.quarantined_since(now - 3600)
    return [
        _result("inbox_backlog", pending, t.inbox_backlog, f"{pending} event(s) waiting."),
        _result(
            "inbox_oldest_event",
            oldest,
            t.inbox_oldest_seconds,
            f"The oldest waiting event arrived {oldest:.0f} s ago.",
        ),
        _result(
            "quarantine_growth",
            quarantined,
            t.quarantine_per_hour,
            f"{quarantined} event(s) quarantined in the last hour.",
        ),
    ]


def _circuits(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    open_flows = s.open_circuits()
    names = ", ".join(open_flows) or "none"
    return [_result("open_circuits", len(open_flows), t.open_circuits, f"Open: {names}.")]


def _registry(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    size, partitions, retention = s.registry_stats()
    last = s.last_prune_end()
    results = [
        _result("registry_size", size, t.registry_bytes, f"The registry holds {size:,} bytes."),
        _result(
            "registry_partitions",
            max(partitions - retention, 0),
            t.registry_partitions_over_retention,
            f"{partitions} day(s) stored for a retention of {retention}.",
        ),
    ]
    if last is None:
        results.append(
            CheckResult(
                "last_pruning",
                "unknown",
                None,
                t.last_prune_age_seconds.describe(),
                "Not applicable: no pruning has succeeded yet.",
                applicable=False,
            )
        )
    else:
        age = now - last
        results.append(
            _result(
                "last_pruning",
                age,
                t.last_prune_age_seconds,
                f"The last successful pruning ended {age / 3600:.1f} h ago.",
            )
        )
    return results


def _storage(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    size = s.storage_bytes()
    usage = shutil.disk_usage(s.disk_path())
    free = usage.free / usage.total
    return [
        _result(
            "storage_size",
            size,
            t.storage_bytes,
            f"The Dagster storage folder holds {size:,} bytes.",
        ),
        _result(
            "free_disk",
            free,
            t.free_disk_fraction,
            f"{usage.free:,} of {usage.total:,} bytes free ({free:.1%}).",
        ),
    ]


def _heartbeats(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    ages = s.heartbeat_ages(now)
    if not ages:
        raise NotApplicable("no daemon heartbeat recorded; is the daemon running?")
    oldest_type = max(ages, key=lambda name: ages[name])
    age = ages[oldest_type]
    return [
        _result(
            "daemon_heartbeat",
            age,
            t.heartbeat_age_seconds,
            f"The stalest daemon heartbeat ({oldest_type}) is {age:.0f} s old.",
        )
    ]


def _memory(s: HealthSources, t: HealthThresholds, now: float) -> list[CheckResult]:
    rss = s.daemon_rss()
    return [
        _result(
            "daemon_memory",
            rss,
            t.daemon_rss_bytes,
            f"The daemon's resident memory is {rss / 2**20:.0f} MiB.",
        )
    ]


def _result(
    name: str, value: float, threshold: Threshold, message: str, subject: str | None = None
) -> CheckResult:
    return CheckResult(
        name, threshold.status(value), float(value), threshold.describe(), message, subject
    )


CheckFn = Callable[[HealthSources, HealthThresholds, float], list[CheckResult]]
CHECKS: list[tuple[tuple[str, ...], CheckFn]] = [
    (("failure_rate",), _failure_rate),
    (("oldest_queued_run", "runs_in_progress"), _queue),
    (("inbox_backlog", "inbox_oldest_event", "quarantine_growth"), _inbox),
    (("open_circuits",), _circuits),
    (("registry_size", "registry_partitions", "last_pruning"), _registry),
    (("storage_size", "free_disk"), _storage),
    (("daemon_heartbeat",), _heartbeats),
    (("daemon_memory",), _memory),
]
CHECK_NAMES = [name for names, _ in CHECKS for name in names]


def by_check(results: list[CheckResult]) -> list[CheckResult]:
    """One result per check name: a per-flow check takes its worst flow's status and value."""
    combined = []
    for name in CHECK_NAMES:
        group = [r for r in results if r.name == name]
        if not group:
            continue
        worst = max(group, key=lambda r: (SEVERITY[r.status], r.value or 0.0))
        if len(group) == 1 and group[0].subject is None:
            combined.append(worst)
            continue
        message = " ".join(f"{r.subject}: {r.status}, {r.message}" for r in group)
        combined.append(CheckResult(name, worst.status, worst.value, worst.threshold, message))
    return combined
