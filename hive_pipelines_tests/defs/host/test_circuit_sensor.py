"""The circuit breaker as the inbox sensor runs it: real failed runs, a clock the test sets.

Failures are real runs of the `drops` flow launched from the sensor's own run requests: a
file that is not JSON lines fails its one node. Threshold 2, cool-down 60 s, ceiling 300 s.

The circuit compares its clock with the end times of real runs, so the clock starts well
behind the time of day: the cool-downs can then pass on the test's clock while every run
still ends after the circuit last changed, as it does when both read the same clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from hive_pipelines.host.circuit import CircuitPolicy
from hive_pipelines_tests.defs.host.support import (
    BAD_LINES,
    DROPS_FLOW,
    GOOD_LINES,
    NUMBERS_FLOW,
    Clock,
    HostDefs,
    Tick,
    arrive_in_order,
    deliver,
    deliver_request,
    execute,
    host_with_clock,
    reset_by_hand,
    tick,
    use_settings,
    write_flow,
)

HIVE = Path(sys.executable).parent / "hive"
POLICY = CircuitPolicy(failure_threshold=2, cooldown_seconds=60, cooldown_max_seconds=300)


def held(count: int, state: str) -> str:
    return f"No run launched: {count} event(s) for flow 'drops' held: circuit {state}."


@pytest.fixture(autouse=True)
def flows(hive_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_settings(
        monkeypatch,
        host_settle_seconds=0,
        circuit_failure_threshold=POLICY.failure_threshold,
        circuit_cooldown_seconds=POLICY.cooldown_seconds,
        circuit_cooldown_max_seconds=POLICY.cooldown_max_seconds,
    )
    write_flow(hive_env, DROPS_FLOW)
    write_flow(hive_env, NUMBERS_FLOW)
    return hive_env


def launch_and_run(
    host: HostDefs, instance: dg.DagsterInstance, cursor: str | None, names: list[str], data: bytes
) -> Tick:
    """Deliver files to `drops`, let the sensor request their runs, and run each."""
    arrive_in_order("drops", names, lambda _name: data)
    result = tick(host, instance, cursor)
    assert result.paths == [f"drops/{name}" for name in names]
    for request in result.requests:
        assert execute(host, instance, request).success == (data == GOOD_LINES)
    return result


def open_circuit(host: HostDefs, instance: dg.DagsterInstance, waiting: int = 0) -> Tick:
    """Two failed host runs, `waiting` good files delivered, then the tick that opens."""
    failed = launch_and_run(host, instance, None, ["bad-1.jsonl", "bad-2.jsonl"], BAD_LINES)
    arrive_in_order("drops", [f"good-{n}.jsonl" for n in range(1, waiting + 1)], good)
    opened = tick(host, instance, failed.cursor)
    assert opened.state.circuits["drops"].state == "open"
    assert opened.state.streams["drops"] == failed.state.streams["drops"]
    return opened


def good(_name: str) -> bytes:
    return GOOD_LINES


def behind_the_time_of_day() -> Clock:
    return Clock(time.time() - 1000)


def test_failed_runs_not_launched_by_the_host_do_not_open_the_circuit(
    instance: dg.DagsterInstance,
) -> None:
    host = host_with_clock(behind_the_time_of_day())
    job = host.definitions.get_job_def("drops")
    for _ in range(2):  # runs launched by hand: no hive/source=host tag
        assert not job.execute_in_process(instance=instance, raise_on_error=False).success
    deliver("drops", "good-1.jsonl", GOOD_LINES)

    result = tick(host, instance)

    assert result.paths == ["drops/good-1.jsonl"]
    assert "drops" not in result.state.circuits


def test_full_cycle_open_half_open_one_trial_closed_then_open_again(
    instance: dg.DagsterInstance,
) -> None:
    clock = behind_the_time_of_day()
    host = host_with_clock(clock)

    # Two failed host runs open the circuit; the events behind them are held.
    opened = open_circuit(host, instance, waiting=3)
    assert opened.requests == []
    assert opened.skip == held(3, "open")
    circuit = opened.state.circuits["drops"]
    opened_at = clock.now
    assert (circuit.opened_at, circuit.changed_at, circuit.open_count) == (opened_at, opened_at, 1)
    assert circuit.cooldown(POLICY) == 60
    assert circuit.reopens_at(POLICY) == opened_at + 60

    clock.now = opened_at + 59
    still = tick(host, instance, opened.cursor)
    assert still.skip == held(3, "open")
    assert still.state.circuits == opened.state.circuits

    # The cool-down ends: half-open, and exactly one of the three waiting events is the trial.
    clock.now = opened_at + 60
    trial = tick(host, instance, still.cursor)
    assert trial.paths == ["drops/good-1.jsonl"]
    circuit = trial.state.circuits["drops"]
    assert (circuit.state, circuit.trial_key) == ("half_open", trial.requests[0].run_key)
    assert trial.state.streams["drops"].name == "good-1.jsonl"
    waiting = tick(host, instance, trial.cursor)
    assert waiting.requests == []
    assert waiting.skip == held(2, "half_open")

    # The trial's run succeeds: closed, and the held events flow again.
    assert execute(host, instance, trial.requests[0]).success
    clock.now += 1
    closed = tick(host, instance, waiting.cursor)
    assert closed.paths == ["drops/good-2.jsonl", "drops/good-3.jsonl"]
    circuit = closed.state.circuits["drops"]
    assert (circuit.state, circuit.since, circuit.open_count) == ("closed", clock.now, 0)
    assert circuit.trial_key is None

    # Failures again: it reopens. docs/host.md: the trial's success "closes the circuit (and
    # resets the cool-down)", so this opening has the first cool-down, not a doubled one.
    clock.now += 1
    names = ["bad-3.jsonl", "bad-4.jsonl"]
    failed = launch_and_run(host, instance, closed.cursor, names, BAD_LINES)
    clock.now += 1
    reopened = tick(host, instance, failed.cursor)
    circuit = reopened.state.circuits["drops"]
    assert (circuit.state, circuit.opened_at, circuit.open_count) == ("open", clock.now, 1)
    assert circuit.cooldown(POLICY) == 60
    assert circuit.reopens_at(POLICY) == clock.now + 60


def test_failed_trial_reopens_the_circuit_with_a_doubled_cooldown(
    instance: dg.DagsterInstance,
) -> None:
    clock = behind_the_time_of_day()
    host = host_with_clock(clock)
    opened = open_circuit(host, instance)
    deliver("drops", "bad-3.jsonl", BAD_LINES)
    time.sleep(0.01)
    deliver("drops", "good-1.jsonl", GOOD_LINES)
    clock.now += 60
    trial = tick(host, instance, opened.cursor)
    [request] = trial.requests
    assert request.tags["hive/event_path"] == "drops/bad-3.jsonl"
    assert not execute(host, instance, request).success

    clock.now += 1
    reopened = tick(host, instance, trial.cursor)

    assert reopened.skip == held(1, "open")
    circuit = reopened.state.circuits["drops"]
    assert (circuit.state, circuit.opened_at, circuit.open_count) == ("open", clock.now, 2)
    assert circuit.cooldown(POLICY) == 120
    reopens_at = circuit.reopens_at(POLICY)
    assert reopens_at == clock.now + 120
    clock.now = reopens_at - 1
    assert tick(host, instance, reopened.cursor).skip == held(1, "open")
    clock.now = reopens_at
    assert tick(host, instance, reopened.cursor).paths == ["drops/good-1.jsonl"]


def test_open_circuit_holds_only_its_own_flow(instance: dg.DagsterInstance) -> None:
    host = host_with_clock(behind_the_time_of_day())
    opened = open_circuit(host, instance)
    deliver(".uploads", "day.jsonl", GOOD_LINES)
    deliver_request(
        "a.json", {"id": "drops-1", "flow": "drops", "inputs": [{"path": ".uploads/day.jsonl"}]}
    )
    deliver_request("b.json", {"id": "numbers-1", "flow": "numbers"})

    result = tick(host, instance, opened.cursor)

    assert result.keys == ["request:numbers-1"]
    assert (Path(result.requests[0].tags["hive/event_path"])).parts[0] == "numbers"
    after = tick(host, instance, result.cursor)
    assert after.skip == held(1, "open")


def test_reset_circuit_run_closes_the_open_circuit_of_its_flow_only(
    instance: dg.DagsterInstance,
) -> None:
    clock = Clock()
    host = host_with_clock(clock)
    opened = open_circuit(host, instance, waiting=1)

    assert reset_by_hand(instance, "numbers").success
    clock.now = time.time()
    other = tick(host, instance, opened.cursor)
    assert other.skip == held(1, "open")

    assert reset_by_hand(instance, "drops").success
    clock.now = time.time()
    closed = tick(host, instance, other.cursor)
    assert closed.state.circuits["drops"].state == "closed"
    assert closed.paths == ["drops/good-1.jsonl"]

    deliver("drops", "good-2.jsonl", GOOD_LINES)
    clock.now = time.time()
    later = tick(host, instance, closed.cursor)
    assert later.paths == ["drops/good-2.jsonl"], "the failures before the reset no longer count"


def test_circuit_survives_in_the_cursor_and_hive_circuit_reset_closes_it(
    instance: dg.DagsterInstance,
) -> None:
    opened = open_circuit(host_with_clock(Clock()), instance, waiting=1)

    # A sensor built afresh (a restarted daemon) reads the circuit back from the cursor.
    restarted = tick(host_with_clock(Clock()), instance, opened.cursor)
    assert restarted.skip == held(1, "open")
    assert restarted.state.circuits == opened.state.circuits

    env = {**os.environ, "DAGSTER_HOME": str(instance.root_directory)}
    done = subprocess.run(
        [str(HIVE), "circuit", "reset", "drops"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Circuit of flow 'drops' reset by run" in done.stdout
    [reset_run] = instance.get_run_records(dg.RunsFilter(job_name="reset_circuit"))
    assert reset_run.dagster_run.status == dg.DagsterRunStatus.SUCCESS

    closed = tick(host_with_clock(Clock()), instance, restarted.cursor)
    assert closed.state.circuits["drops"].state == "closed"
    assert closed.paths == ["drops/good-1.jsonl"]
