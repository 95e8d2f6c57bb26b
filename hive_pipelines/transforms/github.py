"""Transforms that know GH Archive events: one JSON object per line, payloads per type.

Ids are strings, `created_at` is not ordered, `org` is often missing and a payload's shape
depends on the event type; `flatten_github_events` turns all that into one flat table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hive_pipelines.transforms.builtin import require_columns
from hive_pipelines.transforms.registry import NoParams, TransformContext, transform

EVENT_COLUMNS = ["id", "type", "actor", "repo", "payload", "created_at"]


@transform(
    "flatten_github_events",
    params=NoParams,
    description="One row per GH Archive event: type, actor, repo, org, time, commits, flags.",
)
def flatten_github_events(
    ctx: TransformContext, params: NoParams, events: pd.DataFrame
) -> pd.DataFrame:
    require_columns(events, EVENT_COLUMNS, "flatten_github_events")
    kinds = events["type"].astype("string")
    payloads = events["payload"]
    flat = pd.DataFrame(
        {
            "event_id": events["id"].astype("string"),
            "type": kinds,
            "actor": events["actor"].map(lambda v: _field(v, "login")).astype("string"),
            "repo": events["repo"].map(lambda v: _field(v, "name")).astype("string"),
            "org": _org(events),
            "created_at": pd.to_datetime(events["created_at"], utc=True),
        }
    )
    is_push = kinds == "PushEvent"
    sizes = payloads.map(lambda v: _field(v, "size"))
    flat["commits"] = pd.to_numeric(sizes.where(is_push), errors="coerce").fillna(0).astype("int64")
    flat["is_push"] = is_push.astype("int64")
    flat["is_star"] = (kinds == "WatchEvent").astype("int64")
    flat["is_pull_request"] = (kinds == "PullRequestEvent").astype("int64")
    flat["is_issue"] = (kinds == "IssuesEvent").astype("int64")
    return flat


def _org(events: pd.DataFrame) -> pd.Series:
    if "org" not in events.columns:
        return pd.Series(pd.NA, index=events.index, dtype="string")
    return events["org"].map(lambda v: _field(v, "login")).astype("string")


def _field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None
