"""The shape of a flow file, as pydantic models.

These models check each field on its own; whether the nodes form a valid graph is the job of
`flowgraph.validate`, which sees the whole flow at once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySpec(_Strict):
    """A node's retry policy; fields left out come from the flow defaults, then settings."""

    max_retries: int | None = Field(default=None, ge=0, le=20)
    delay_seconds: float | None = Field(default=None, ge=0, le=3600)
    backoff: Literal["exponential", "linear"] | None = None
    jitter: Literal["plus_minus", "full", "none"] | None = None


class NodeDefaults(_Strict):
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class FlowLimits(_Strict):
    """Bounds on a flow; left out, they come from settings."""

    max_nodes: int | None = Field(default=None, ge=1, le=10_000)
    max_depth: int | None = Field(default=None, ge=1, le=10_000)
    max_run_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class HostSpec(_Strict):
    """How the host feeds an event's file to the flow: the node and param that take its path."""

    input_node: str | None = None
    input_param: str = "path"
    input_root_param: str | None = "root"


class ScheduleSpec(_Strict):
    """A cron schedule for the flow's job; `enabled` left out follows the profile."""

    cron: str = Field(min_length=9, max_length=100)
    timezone: str = "UTC"
    enabled: bool | None = None


class NodeSpec(_Strict):
    """One step of a flow: a registered transform, its params and the nodes it reads from."""

    id: str = Field(pattern=NAME_PATTERN)
    transform: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    params: dict[str, Any] = Field(default_factory=dict)
    upstream: list[str] = Field(default_factory=list, max_length=100)
    retry: RetrySpec | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class FlowSpec(_Strict):
    """A whole flow as written in YAML."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=5000)
    nodes: list[NodeSpec] = Field(default_factory=list)
    defaults: NodeDefaults = Field(default_factory=NodeDefaults)
    limits: FlowLimits = Field(default_factory=FlowLimits)
    tags: dict[str, str] = Field(default_factory=dict)
    host: HostSpec = Field(default_factory=HostSpec)
    schedule: ScheduleSpec | None = None
