"""Small readings of Dagster run records that several domains share."""

from typing import Any

import dagster as dg

FAILED_STATUSES = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
FINISHED = [dg.DagsterRunStatus.SUCCESS, *sorted(FAILED_STATUSES, key=lambda s: s.value)]


def op_config(record: dg.RunRecord, op: str, key: str, default: Any = None) -> Any:
    """One value of an op's config in the run's config (`ops.<op>.config.<key>`)."""
    config = record.dagster_run.run_config or {}
    ops = config.get("ops", {}) if isinstance(config, dict) else {}
    return ops.get(op, {}).get("config", {}).get(key, default)


def innermost_error(error: Any) -> Any:
    """The error at the bottom of a chain of causes: after its last retry Dagster wraps a
    step's error ("Exceeded max_retries"), and the user's error is its cause."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def step_failure_text(event: dg.DagsterEvent) -> str:
    """What a step failed with: our ops' own full sentence (the Failure's description), else
    the innermost error's message, else the event's message."""
    data = event.step_failure_data
    user = data.user_failure_data if data is not None else None
    if user is not None and user.description:
        return user.description
    error = innermost_error(data.error if data is not None else None)
    if error is not None and error.message:
        return str(error.message).strip()
    return event.message or ""
