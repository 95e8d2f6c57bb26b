"""Task assignments from step events, and each worker's day, on hand-made events.

The events follow the sequences Dagster writes: STEP_WORKER_STARTING (multiprocess only),
STEP_START, STEP_UP_FOR_RETRY then STEP_RESTARTED per retry, STEP_OUTPUT (which carries
the worker), and STEP_SUCCESS or STEP_FAILURE; or STEP_SKIPPED alone.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pandas as pd
import pytest

from hive_pipelines.registry.assignments import (
    COLUMNS,
    MAX_MESSAGE_CHARS,
    RunInfo,
    StepEvent,
    day_bounds,
    day_of,
    task_assignments,
    worker_summary,
)

T0 = datetime(2026, 3, 15, 10, 0, tzinfo=UTC).timestamp()
RUN = RunInfo(run_id="run-b", flow="orders", event_id="evt-1", end_time=T0 + 60)


def ts(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + seconds, unit="s", tz="UTC")


def event(kind: str, at: float, node: str = "load", run_id: str = "run-b", **extra) -> StepEvent:
    return StepEvent(run_id=run_id, step_key=node, kind=kind, timestamp=T0 + at, **extra)


def retried_then_succeeded() -> list[StepEvent]:
    return [
        event("STEP_WORKER_STARTING", 0.0, pid=11),
        event("STEP_START", 1.0, pid=11),
        event("STEP_UP_FOR_RETRY", 3.0, pid=11, error_class="Failure", error_message="boom"),
        event("STEP_RESTARTED", 4.0, pid=12),
        event("STEP_OUTPUT", 5.5, pid=12, worker="host-a:12"),
        event("STEP_SUCCESS", 6.0, pid=12),
    ]


def failed_every_attempt(node: str = "broken") -> list[StepEvent]:
    return [
        event("STEP_START", 10.0, node, pid=21),
        event("STEP_UP_FOR_RETRY", 10.5, node, pid=21, error_class="Failure", error_message="1"),
        event("STEP_RESTARTED", 11.0, node, pid=21),
        event(
            "STEP_FAILURE",
            12.25,
            node,
            pid=21,
            worker="host-a:21",
            error_class="RuntimeError",
            error_message="planned failure on attempt 2",
        ),
    ]


def only_row(frame: pd.DataFrame) -> dict:
    assert len(frame) == 1
    return frame.iloc[0].to_dict()


def test_retried_step_is_one_row_with_two_attempts() -> None:
    row = only_row(task_assignments([RUN], retried_then_succeeded()))

    assert row["day"] == "2026-03-15"
    assert (row["flow"], row["node"], row["run_id"], row["event_id"]) == (
        "orders",
        "load",
        "run-b",
        "evt-1",
    )
    assert row["worker"] == "host-a:12"
    assert row["assigned_at"] == ts(0.0)
    assert row["started_at"] == ts(1.0)
    assert row["finished_at"] == ts(6.0)
    assert row["attempts"] == 2
    assert row["outcome"] == "success"
    # Busy while an attempt ran: 1 -> 3 and 4 -> 6, not the wait between them.
    assert row["busy_seconds"] == pytest.approx(4.0)
    # The failed first attempt is not an error of a step that succeeded.
    assert pd.isna(row["error_class"]) and pd.isna(row["error_message"])


def test_step_that_failed_every_attempt_keeps_its_last_error() -> None:
    row = only_row(task_assignments([RUN], failed_every_attempt()))

    assert row["outcome"] == "failure"
    assert row["attempts"] == 2
    assert row["error_class"] == "RuntimeError"
    assert row["error_message"] == "planned failure on attempt 2"
    assert row["worker"] == "host-a:21"
    # No STEP_WORKER_STARTING (in-process executor): assigned when it started.
    assert row["assigned_at"] == row["started_at"] == ts(10.0)
    assert row["finished_at"] == ts(12.25)
    assert row["busy_seconds"] == pytest.approx(0.5 + 1.25)


def test_long_error_message_is_cut() -> None:
    events = failed_every_attempt()
    last = events[-1]
    events[-1] = StepEvent(**{**last.__dict__, "error_message": "x" * (MAX_MESSAGE_CHARS + 500)})

    row = only_row(task_assignments([RUN], events))

    assert row["error_message"] == "x" * MAX_MESSAGE_CHARS


def test_skipped_and_unfinished_steps() -> None:
    events = [
        event("STEP_SKIPPED", 7.0, "after_failure", pid=31),
        event("STEP_START", 8.0, "still_running", pid=32),
    ]

    rows = task_assignments([RUN], events).set_index("node")

    skipped = rows.loc["after_failure"]
    assert (skipped["outcome"], skipped["attempts"]) == ("skipped", 0)
    assert pd.isna(skipped["started_at"]) and pd.isna(skipped["finished_at"])
    assert skipped["assigned_at"] == ts(7.0)
    assert skipped["busy_seconds"] == 0.0
    running = rows.loc["still_running"]
    assert (running["outcome"], running["attempts"]) == ("unfinished", 1)
    assert pd.isna(running["finished_at"])
    assert running["busy_seconds"] == 0.0
    # Without the worker in metadata, the process id Dagster recorded names it.
    assert skipped["worker"] == "pid:31"
    assert running["worker"] == "pid:32"


def test_rows_are_sorted_typed_and_only_for_the_runs_given() -> None:
    other = RunInfo(run_id="run-a", flow="other", event_id=None, end_time=T0 + 120)
    events = [
        *retried_then_succeeded(),
        *failed_every_attempt(),
        event("STEP_START", 1.0, "z_last", run_id="run-a"),
        event("STEP_SUCCESS", 2.0, "z_last", run_id="run-a"),
        event("STEP_START", 1.0, "a_first", run_id="run-a"),
        event("STEP_SUCCESS", 2.0, "a_first", run_id="run-a"),
        event("STEP_START", 1.0, "ignored", run_id="run-not-asked-for"),
    ]

    frame = task_assignments([RUN, other], events)

    assert list(zip(frame["run_id"], frame["node"], strict=True)) == [
        ("run-a", "a_first"),
        ("run-a", "z_last"),
        ("run-b", "broken"),
        ("run-b", "load"),
    ]
    assert frame["event_id"].isna().tolist() == [True, True, False, False]
    assert {name: str(kind) for name, kind in frame.dtypes.items()} == {
        name: str(pd.Series(dtype=kind).dtype) for name, kind in COLUMNS.items()
    }


def test_same_events_in_any_order_give_the_same_rows() -> None:
    events = retried_then_succeeded() + failed_every_attempt() + failed_every_attempt("other")
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)

    pd.testing.assert_frame_equal(
        task_assignments([RUN], events), task_assignments([RUN], shuffled)
    )


def test_no_events_give_an_empty_typed_frame() -> None:
    frame = task_assignments([RUN], [])

    assert frame.empty
    assert list(frame.columns) == list(COLUMNS)
    summary = worker_summary(frame)
    assert summary.empty
    assert list(summary.columns) == [
        "day",
        "worker",
        "tasks",
        "failures",
        "retries",
        "busy_seconds",
    ]


def test_worker_summary_adds_up_each_workers_rows() -> None:
    rows = pd.DataFrame(
        {
            "day": ["2026-03-15"] * 5,
            "worker": ["w1", "w2", "w1", None, "w1"],
            "node": ["a", "b", "c", "d", "e"],
            "attempts": [1, 3, 2, 1, 0],
            "outcome": ["success", "failure", "success", "success", "skipped"],
            "busy_seconds": [1.5, 2.0, 0.25, 4.0, 0.0],
        }
    ).astype({"day": "string", "worker": "string"})

    summary = worker_summary(rows)

    # Independently, by hand: w1 has a, c, e; w2 has b; the row without a worker is "unknown".
    assert summary["worker"].tolist() == ["unknown", "w1", "w2"]
    assert summary["tasks"].tolist() == [1, 3, 1]
    assert summary["failures"].tolist() == [0, 0, 1]
    assert summary["retries"].tolist() == [0, 1, 2]  # a skipped step (0 attempts) adds none
    assert summary["busy_seconds"].tolist() == [4.0, 1.75, 2.0]
    assert summary["day"].tolist() == ["2026-03-15"] * 3


def test_day_of_and_day_bounds_are_utc() -> None:
    start, end = day_bounds("2026-03-15")

    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 3, 15, tzinfo=UTC)
    assert end - start == 86_400
    assert day_of(start) == "2026-03-15"
    assert day_of(end - 0.000001) == "2026-03-15"
    assert day_of(end) == "2026-03-16"
