"""The per-flow circuit breaker, as a pure state machine on a clock the caller gives.

closed --N consecutive failed host runs--> open --cool-down ends--> half_open
half_open --its one trial run succeeds--> closed;  --the trial fails--> open (longer cool-down)
any state --a reset by hand--> closed

The cool-down doubles with each opening that is not followed by a close, up to a ceiling.
Failures are read from Dagster's run records, so only the few fields below need keeping;
they live in the host sensor's cursor, which survives daemon restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

CircuitName = Literal["closed", "open", "half_open"]
TrialOutcome = Literal["none", "missing", "pending", "success", "failure"]
# A trial whose run never appeared (its launch failed, its run was deleted) counts as a
# failure after this long, so a half-open circuit cannot wait forever.
TRIAL_GRACE_SECONDS = 600.0


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int
    cooldown_seconds: float
    cooldown_max_seconds: float


class CircuitState(BaseModel):
    """One flow's circuit. `since` is when failures start counting (the last close)."""

    state: CircuitName = "closed"
    changed_at: float = 0.0
    since: float = 0.0
    opened_at: float | None = None
    open_count: int = 0
    trial_key: str | None = None
    trial_at: float | None = None

    def cooldown(self, policy: CircuitPolicy) -> float:
        growth = policy.cooldown_seconds * 2 ** max(self.open_count - 1, 0)
        return float(min(growth, policy.cooldown_max_seconds))

    def reopens_at(self, policy: CircuitPolicy) -> float | None:
        if self.state != "open" or self.opened_at is None:
            return None
        return self.opened_at + self.cooldown(policy)

    def allows(self) -> int | None:
        """How many events may launch now: None for no bound, 0 or 1 otherwise."""
        if self.state == "closed":
            return None
        if self.state == "half_open" and self.trial_key is None:
            return 1
        return 0


@dataclass(frozen=True)
class RunOutcome:
    """A finished host-launched run of the flow."""

    end_time: float
    succeeded: bool


def consecutive_failures(outcomes: list[RunOutcome], since: float) -> int:
    """Failures in a row among runs that ended after `since`, newest first."""
    count = 0
    for outcome in sorted(outcomes, key=lambda o: o.end_time, reverse=True):
        if outcome.end_time <= since or outcome.succeeded:
            break
        count += 1
    return count


def advance(
    current: CircuitState,
    now: float,
    policy: CircuitPolicy,
    outcomes: list[RunOutcome],
    trial: TrialOutcome = "none",
    reset_at: float | None = None,
) -> CircuitState:
    """The circuit's next state, given what happened since it last changed."""
    if reset_at is not None and reset_at > current.changed_at and current.state != "closed":
        return _closed(now)

    if current.state == "closed":
        if consecutive_failures(outcomes, current.since) >= policy.failure_threshold:
            return _opened(current, now)
        return current

    if current.state == "open":
        reopens = current.reopens_at(policy)
        if reopens is not None and now >= reopens:
            return current.model_copy(update={"state": "half_open", "changed_at": now})
        return current

    if trial == "missing" and now - (current.trial_at or now) >= TRIAL_GRACE_SECONDS:
        return _opened(current, now)
    if trial == "success":
        return _closed(now)
    if trial == "failure":
        return _opened(current, now)
    return current


def with_trial(current: CircuitState, key: str, now: float | None = None) -> CircuitState:
    """Record the event launched as the half-open circuit's one trial."""
    return current.model_copy(update={"trial_key": key, "trial_at": now})


def _opened(current: CircuitState, now: float) -> CircuitState:
    return CircuitState(
        state="open",
        changed_at=now,
        since=current.since,
        opened_at=now,
        open_count=current.open_count + 1,
    )


def _closed(now: float) -> CircuitState:
    return CircuitState(state="closed", changed_at=now, since=now)
