"""Task assignments: one row per node execution of a flow run, from Dagster's step events.

Plain Python over plain records: `defs/registry` reads the events from the instance and
hands them here as `StepEvent`s, so the same rows come out however often a day is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

COLUMNS = {
    "day": "string",
    "flow": "string",
    "node": "string",
    "run_id": "string",
    "event_id": "string",
    "worker": "string",
    "assigned_at": "datetime64[us, UTC]",
    "started_at": "datetime64[us, UTC]",
    "finished_at": "datetime64[us, UTC]",
    "attempts": "int64",
    "outcome": "string",
    "busy_seconds": "float64",
    "error_class": "string",
    "error_message": "string",
}
MAX_MESSAGE_CHARS = 2000
ATTEMPT_STARTS = {"STEP_START", "STEP_RESTARTED"}


@dataclass(frozen=True)
class StepEvent:
    """One step event of a run, reduced to what the registry keeps."""

    run_id: str
    step_key: str
    kind: str  # STEP_WORKER_STARTING, STEP_START, STEP_RESTARTED, STEP_UP_FOR_RETRY, ...
    timestamp: float
    worker: str | None = None
    pid: int | None = None
    error_class: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class RunInfo:
    """A finished run of a flow: who launched it and when it ended."""

    run_id: str
    flow: str
    event_id: str | None
    end_time: float


def day_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).date().isoformat()


def day_bounds(day: str) -> tuple[float, float]:
    """The UTC start and end of a day, as timestamps."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    return start.timestamp(), start.timestamp() + 86_400


def task_assignments(runs: Iterable[RunInfo], events: Iterable[StepEvent]) -> pd.DataFrame:
    """The rows of the runs given, one per node that ran, sorted by run and node."""
    by_run = {run.run_id: run for run in runs}
    steps: dict[tuple[str, str], list[StepEvent]] = {}
    for event in events:
        if event.run_id in by_run:
            steps.setdefault((event.run_id, event.step_key), []).append(event)
    rows = [_row(by_run[run_id], node, history) for (run_id, node), history in steps.items()]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame = frame.astype(COLUMNS) if len(frame) else _empty()
    return frame.sort_values(["run_id", "node"], kind="stable").reset_index(drop=True)


def worker_summary(assignments: pd.DataFrame) -> pd.DataFrame:
    """Per worker and day: tasks, failures, retries (attempts beyond the first), busy time."""
    if assignments.empty:
        return pd.DataFrame(
            {
                "day": [],
                "worker": [],
                "tasks": [],
                "failures": [],
                "retries": [],
                "busy_seconds": [],
            }
        ).astype(
            {"tasks": "int64", "failures": "int64", "retries": "int64", "busy_seconds": "float64"}
        )
    frame = assignments.assign(
        worker=assignments["worker"].fillna("unknown"),
        failed=(assignments["outcome"] == "failure").astype("int64"),
        retried=(assignments["attempts"] - 1).clip(lower=0),
    )
    summary = frame.groupby(["day", "worker"], sort=True).agg(
        tasks=("node", "size"),
        failures=("failed", "sum"),
        retries=("retried", "sum"),
        busy_seconds=("busy_seconds", "sum"),
    )
    return summary.reset_index()


def _row(run: RunInfo, node: str, history: list[StepEvent]) -> dict[str, object]:
    history = sorted(history, key=lambda e: e.timestamp)
    kinds = [e.kind for e in history]
    # A retried attempt starts with STEP_RESTARTED instead of STEP_START.
    starts = [e for e in history if e.kind in ATTEMPT_STARTS]
    ends = [e for e in history if e.kind in {"STEP_SUCCESS", "STEP_FAILURE"}]
    assigned = next((e for e in history if e.kind == "STEP_WORKER_STARTING"), None)
    assigned = assigned or (starts[0] if starts else history[0])
    started = starts[0].timestamp if starts else None
    finished = ends[-1].timestamp if ends else None
    failure = next((e for e in reversed(history) if e.error_class), None)
    # Our ops name their worker (host:pid) in metadata; else the step process's pid.
    worker = next((e.worker for e in reversed(history) if e.worker), None)
    pid = next((e.pid for e in reversed(history) if e.pid), None)
    worker = worker or (f"pid:{pid}" if pid else None)
    if "STEP_SUCCESS" in kinds:
        outcome = "success"
    elif "STEP_FAILURE" in kinds:
        outcome = "failure"
    elif "STEP_SKIPPED" in kinds:
        outcome = "skipped"
    else:
        outcome = "unfinished"
    return {
        "day": day_of(run.end_time),
        "flow": run.flow,
        "node": node,
        "run_id": run.run_id,
        "event_id": run.event_id,
        "worker": worker,
        "assigned_at": _ts(assigned.timestamp),
        "started_at": _ts(started),
        "finished_at": _ts(finished),
        "attempts": max(len(starts), 1 if started else 0),
        "outcome": outcome,
        "busy_seconds": _busy(history),
        "error_class": failure.error_class if failure and outcome == "failure" else None,
        "error_message": (failure.error_message or "")[:MAX_MESSAGE_CHARS]
        if failure and outcome == "failure"
        else None,
    }


def _busy(history: list[StepEvent]) -> float:
    """Time between each attempt's start and its end (success, failure or retry)."""
    busy, started = 0.0, None
    for event in history:
        if event.kind in ATTEMPT_STARTS:
            started = event.timestamp
        elif event.kind in {"STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY"} and started:
            busy += event.timestamp - started
            started = None
    return round(busy, 6)


def _ts(value: float | None) -> pd.Timestamp | None:
    return pd.Timestamp(value, unit="s", tz="UTC") if value is not None else None


def _empty() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in COLUMNS.items()})
