"""Turning inbox entries into events: identity, validation, and the run config of each.

An event's identity is its run key: `request:<id>` for a request, and for a data file its
flow, name and content hash, so a file delivered twice is one event and a file rewritten
with new content is a new one. Anything wrong with an event raises EventRejected with a
kind and a full-sentence reason; the host quarantines the file with that reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hive_pipelines.flowgraph.validate import FlowPlan
from hive_pipelines.host.inbox import Entry, content_hash
from hive_pipelines.settings import HiveSettings
from hive_pipelines.transforms.paths import PathNotAllowedError, resolve_under
from hive_pipelines.transforms.registry import TransformRegistry


class EventRejected(Exception):
    """An event that can never run; `kind` names the rule it broke."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class InputRef(BaseModel):
    """A file a request hands to a node: a path inside a named data root (default: inbox)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = "inbox"
    path: str = Field(min_length=1, max_length=1000)
    node: str | None = None


class EventRequest(BaseModel):
    """A JSON request in inbox/requests/: run `flow` with per-node `params` and `inputs`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    flow: str = Field(min_length=1, max_length=63)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    inputs: list[InputRef] = Field(default_factory=list, max_length=10)


@dataclass(frozen=True)
class Event:
    """An event the host may launch: exactly one run, keyed by `key`."""

    key: str
    event_id: str
    source: str
    flow: str
    path: Path
    run_config: dict[str, Any] = field(default_factory=dict)


def read_request(entry: Entry, max_bytes: int) -> EventRequest:
    """Parse and validate a request file, or raise EventRejected saying what is wrong."""
    _check_plain_file(entry, max_bytes, "HIVE_MAX_REQUEST_BYTES")
    raw = entry.path.read_bytes()[: max_bytes + 1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventRejected(
            "encoding", f"The request is not UTF-8 text: byte {exc.start} is invalid."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventRejected(
            "json", f"The request is not valid JSON: {exc.msg} at line {exc.lineno}."
        ) from None
    try:
        return EventRequest.model_validate(data)
    except ValidationError as exc:
        raise EventRejected("schema", "The request does not fit: " + _errors(exc)) from None


def file_event(
    entry: Entry, plan: FlowPlan | None, settings: HiveSettings, registry: TransformRegistry
) -> Event:
    """The event of a data file in `inbox/<flow>/`; its path goes to the flow's input node."""
    plan = _known_flow(plan, entry.stream)
    _check_plain_file(entry, settings.max_event_file_bytes, "HIVE_MAX_EVENT_FILE_BYTES")
    host = plan.spec.host
    if host.input_node is None:
        raise EventRejected(
            "no_input",
            f"Flow {plan.name!r} takes no input files (its YAML has no host.input_node); "
            "send a request to inbox/requests/ instead.",
        )
    digest = content_hash(entry.path, settings.max_event_file_bytes)
    relative = f"{entry.stream}/{entry.path.name}"
    overrides = {host.input_node: _input_params(plan, "inbox", relative)}
    return Event(
        key=f"file:{relative}@{digest[:24]}",
        event_id=f"{entry.path.name}@{digest[:12]}",
        source="file",
        flow=plan.name,
        path=entry.path,
        run_config=run_config(plan, overrides, registry),
    )


def request_event(
    request: EventRequest,
    entry: Entry,
    plan: FlowPlan | None,
    settings: HiveSettings,
    registry: TransformRegistry,
) -> Event:
    """The event of a validated request: its params and inputs checked against the flow."""
    plan = _known_flow(plan, request.flow)
    overrides = {node: dict(params) for node, params in request.params.items()}
    for ref in request.inputs:
        node = ref.node or plan.spec.host.input_node
        if node is None:
            raise EventRejected(
                "no_input",
                f"Input {ref.path!r} names no node and flow {plan.name!r} has no host.input_node.",
            )
        _check_input_path(ref, settings)
        overrides[node] = {**overrides.get(node, {}), **_input_params(plan, ref.root, ref.path)}
    return Event(
        key=f"request:{request.id}",
        event_id=request.id,
        source="request",
        flow=plan.name,
        path=entry.path,
        run_config=run_config(plan, overrides, registry),
    )


def run_config(
    plan: FlowPlan, overrides: dict[str, dict[str, Any]], registry: TransformRegistry
) -> dict[str, Any]:
    """Run config that sets node params, each merged over the YAML and validated."""
    ops: dict[str, Any] = {}
    for node_id, params in overrides.items():
        node = next((n for n in plan.nodes if n.id == node_id), None)
        if node is None:
            raise EventRejected(
                "params", f"Flow {plan.name!r} has no node {node_id!r} to take params."
            )
        merged = {**node.spec.params, **params}
        try:
            registry.get(node.spec.transform).params_model.model_validate(merged)
        except ValidationError as exc:
            raise EventRejected(
                "params", f"Params for node {node_id!r} do not fit: " + _errors(exc)
            ) from None
        ops[node_id] = {"config": {"params": params}}
    return {"ops": ops} if ops else {}


def _input_params(plan: FlowPlan, root: str, path: str) -> dict[str, Any]:
    host = plan.spec.host
    params: dict[str, Any] = {host.input_param: path}
    if host.input_root_param:
        params[host.input_root_param] = root
    return params


def _known_flow(plan: FlowPlan | None, name: str) -> FlowPlan:
    if plan is None:
        raise EventRejected(
            "unknown_flow",
            f"There is no valid flow named {name!r}; `hive flows validate` lists the flows.",
        )
    return plan


def _check_plain_file(entry: Entry, max_bytes: int, setting: str) -> None:
    if entry.is_symlink:
        raise EventRejected("symlink", "The event is a symbolic link; events must be files.")
    if entry.size > max_bytes:
        raise EventRejected(
            "too_large",
            f"The event is {entry.size:,} bytes, over the limit of {max_bytes:,} ({setting}).",
        )


def _check_input_path(ref: InputRef, settings: HiveSettings) -> None:
    roots = settings.resolved_data_roots
    try:
        real = resolve_under(roots, ref.root, ref.path)
    except PathNotAllowedError as exc:
        raise EventRejected("path_escape", str(exc)) from None
    if Path(ref.path).is_absolute():
        raise EventRejected(
            "path_escape", f"Input {ref.path!r} must be a path relative to root {ref.root!r}."
        )
    walked = Path(os.path.abspath(roots[ref.root]))
    for part in Path(ref.path).parts:
        walked = walked / part
        if walked.is_symlink():
            raise EventRejected("symlink", f"Input {ref.path!r} goes through a symbolic link.")
    first = Path(ref.path).parts[0]
    if ref.root == "inbox" and not first.startswith(".") and len(Path(ref.path).parts) > 1:
        # A visible folder of the inbox is a stream: its files are events of their own, and
        # one file must not feed two runs (nor vanish when the other run moves it).
        raise EventRejected(
            "input_in_stream",
            f"Input {ref.path!r} lies in the inbox stream {first!r}, whose files are events "
            "themselves; put request inputs at the inbox's top level or in a hidden folder "
            "such as .uploads/.",
        )
    if not real.is_file():
        raise EventRejected("missing_input", f"Input {ref.path!r} is not a file in {ref.root!r}.")
    size = real.stat().st_size
    if size > settings.max_event_file_bytes:
        raise EventRejected(
            "too_large",
            f"Input {ref.path!r} is {size:,} bytes, over the limit of "
            f"{settings.max_event_file_bytes:,}.",
        )


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        parts.append(f"field `{where}`: {error['msg']}")
    return "; ".join(parts) + "."
