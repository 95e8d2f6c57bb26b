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
