"""The circuit breaker as a pure state machine: closed, open, half-open, on a given clock."""

from __future__ import annotations

from hive_pipelines.host.circuit import (
    TRIAL_GRACE_SECONDS,
    CircuitPolicy,
    CircuitState,
    RunOutcome,
    advance,
    consecutive_failures,
    with_trial,
)

POLICY = CircuitPolicy(failure_threshold=2, cooldown_seconds=60, cooldown_max_seconds=300)
T = 1_000_000.0


def failed(at: float) -> RunOutcome:
    return RunOutcome(end_time=at, succeeded=False)


def succeeded(at: float) -> RunOutcome:
    return RunOutcome(end_time=at, succeeded=True)


def open_state(opened_at: float = T, open_count: int = 1) -> CircuitState:
    return CircuitState(
        state="open", changed_at=opened_at, opened_at=opened_at, open_count=open_count
    )


def half_open(trial_key: str | None = "file:f/a@1", open_count: int = 1) -> CircuitState:
    return CircuitState(
        state="half_open",
        changed_at=T + 60,
        opened_at=T,
        open_count=open_count,
        trial_key=trial_key,
    )


# Counting failures ------------------------------------------------------------------------


def test_consecutive_failures_counts_newest_first_until_a_success() -> None:
    outcomes = [failed(T + 1), succeeded(T + 2), failed(T + 3), failed(T + 4)]

    assert consecutive_failures(outcomes, since=0) == 2


def test_consecutive_failures_ignores_runs_that_ended_at_or_before_since() -> None:
    outcomes = [failed(T), failed(T + 1), failed(T + 2)]

    assert consecutive_failures(outcomes, since=T + 1) == 1


def test_consecutive_failures_of_no_runs_is_zero() -> None:
    assert consecutive_failures([], since=0) == 0


# Closed ----------------------------------------------------------------------------------


def test_closed_circuit_stays_closed_below_the_threshold() -> None:
    current = CircuitState()

    assert advance(current, T, POLICY, [failed(T - 1)]) is current


def test_closed_circuit_opens_at_the_threshold() -> None:
    updated = advance(CircuitState(), T, POLICY, [failed(T - 2), failed(T - 1)])

    assert updated == CircuitState(
        state="open", changed_at=T, since=0.0, opened_at=T, open_count=1, trial_key=None
    )
    assert updated.cooldown(POLICY) == 60
    assert updated.reopens_at(POLICY) == T + 60


def test_closed_circuit_stays_closed_when_a_success_breaks_the_failures() -> None:
    outcomes = [failed(T - 3), succeeded(T - 2), failed(T - 1)]

    assert advance(CircuitState(), T, POLICY, outcomes).state == "closed"


def test_failures_before_the_last_close_do_not_reopen_the_circuit() -> None:
    closed = CircuitState(state="closed", changed_at=T, since=T)

    assert advance(closed, T + 1, POLICY, [failed(T - 2), failed(T - 1)]).state == "closed"


def test_closed_circuit_allows_any_number_of_events() -> None:
    assert CircuitState().allows() is None


# Open ------------------------------------------------------------------------------------


def test_open_circuit_allows_no_event() -> None:
    assert open_state().allows() == 0


def test_open_circuit_stays_open_until_the_cooldown_ends() -> None:
    current = open_state()

    assert advance(current, T + 59.9, POLICY, []) is current


def test_open_circuit_half_opens_when_the_cooldown_ends() -> None:
    updated = advance(open_state(), T + 60, POLICY, [])

    assert (updated.state, updated.changed_at, updated.open_count) == ("half_open", T + 60, 1)
    assert updated.trial_key is None
    assert updated.reopens_at(POLICY) is None


def test_open_circuit_ignores_new_failures_and_successes() -> None:
    current = open_state()

    assert advance(current, T + 1, POLICY, [succeeded(T + 1)]) is current
    assert advance(current, T + 1, POLICY, [failed(T + 1)] * 5) is current


# Half-open -------------------------------------------------------------------------------


def test_half_open_circuit_allows_one_trial() -> None:
    assert half_open(trial_key=None).allows() == 1


def test_half_open_circuit_with_its_trial_launched_allows_no_more() -> None:
    current = with_trial(half_open(trial_key=None), "file:f/a@1")

    assert current.trial_key == "file:f/a@1"
    assert current.allows() == 0


def test_half_open_circuit_waits_while_its_trial_is_pending() -> None:
    current = half_open()

    assert advance(current, T + 500, POLICY, [], trial="pending") is current


def test_successful_trial_closes_the_circuit_and_resets_the_cooldown() -> None:
    updated = advance(half_open(open_count=3), T + 70, POLICY, [], trial="success")

    assert updated == CircuitState(state="closed", changed_at=T + 70, since=T + 70)
    assert updated.cooldown(POLICY) == 60


def test_failed_trial_reopens_the_circuit_with_a_doubled_cooldown() -> None:
    updated = advance(half_open(), T + 70, POLICY, [], trial="failure")

    assert (updated.state, updated.opened_at, updated.open_count) == ("open", T + 70, 2)
    assert updated.trial_key is None
    assert updated.cooldown(POLICY) == 120
    assert updated.reopens_at(POLICY) == T + 70 + 120


def test_cooldown_doubles_with_each_failed_trial_up_to_the_maximum() -> None:
    current, now, cooldowns = open_state(), T, []
    for _ in range(5):
        cooldowns.append(current.cooldown(POLICY))
        now = current.reopens_at(POLICY) or now
        current = advance(current, now, POLICY, [])
        assert current.state == "half_open"
        current = advance(with_trial(current, "k"), now + 1, POLICY, [], trial="failure")
        now += 1

    assert cooldowns == [60, 120, 240, 300, 300]


# Reset by hand ---------------------------------------------------------------------------


def test_reset_closes_an_open_circuit() -> None:
    updated = advance(open_state(), T + 5, POLICY, [failed(T)] * 3, reset_at=T + 1)

    assert updated == CircuitState(state="closed", changed_at=T + 5, since=T + 5)


def test_reset_closes_a_half_open_circuit_and_forgets_its_trial() -> None:
    updated = advance(half_open(), T + 65, POLICY, [], trial="pending", reset_at=T + 61)

    assert (updated.state, updated.trial_key) == ("closed", None)


def test_reset_older_than_the_last_change_is_ignored() -> None:
    current = open_state()

    assert advance(current, T + 5, POLICY, [], reset_at=T - 1) is current


def test_reset_of_a_closed_circuit_changes_nothing() -> None:
    current = CircuitState(state="closed", changed_at=T, since=T)

    assert advance(current, T + 5, POLICY, [], reset_at=T + 1) is current


def test_a_trial_whose_run_never_appears_reopens_the_circuit_after_the_grace() -> None:
    # Regression: a half-open circuit whose trial run was never created waited forever.
    current = half_open().model_copy(update={"trial_at": T})

    waiting = advance(current, T + TRIAL_GRACE_SECONDS - 1, POLICY, [], trial="missing")
    reopened = advance(current, T + TRIAL_GRACE_SECONDS, POLICY, [], trial="missing")

    assert waiting.state == "half_open"
    assert reopened.state == "open"
    assert reopened.open_count == current.open_count + 1
