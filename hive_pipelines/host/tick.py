"""One evaluation of the host: decide on at most N inbox events, oldest first.

Plain Python: Dagster's run records reach it through the `RunLedger` protocol, and the
sensor in `defs/host` turns the result into run requests, a cursor and a skip reason.

A tick has two phases. Requests in `inbox/requests/` are validated and routed into their
flow's folder (or quarantined), so a request for a flow whose circuit is open never blocks
requests for other flows. Then each flow's folder is read in arrival order and its events
are launched, quarantined or recognised as duplicates. A stream's cursor moves only past
events decided on; an event not yet settled, or held by an open circuit, stops its stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from hive_pipelines.flowgraph.validate import FlowPlan
from hive_pipelines.host.circuit import (
    CircuitPolicy,
    CircuitState,
    RunOutcome,
    TrialOutcome,
    advance,
    with_trial,
)
from hive_pipelines.host.events import (
    Event,
    EventRejected,
    file_event,
    read_request,
    request_event,
)
from hive_pipelines.host.inbox import (
    REQUESTS,
    ROUTED_SUFFIX,
    Entry,
    Position,
    backlog,
    move_to_processed,
    quarantine,
    streams,
)
from hive_pipelines.settings import HiveSettings
from hive_pipelines.transforms.registry import TransformRegistry


class RunLedger(Protocol):
    """What the host needs to know from Dagster's run records."""

    def outcomes(self, flow: str, limit: int) -> list[RunOutcome]: ...

    def event_outcome(self, key: str) -> TrialOutcome:
        """How the run of an event key went: missing, pending, success or failure."""
        ...

    def reset_at(self, flow: str) -> float | None: ...


class HostCursor(BaseModel):
    """The host sensor's cursor: each stream's position and each flow's circuit."""

    streams: dict[str, Position] = Field(default_factory=dict)
    circuits: dict[str, CircuitState] = Field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> HostCursor:
        return cls.model_validate_json(text) if text else cls()


@dataclass
class TickResult:
    launches: list[Event] = field(default_factory=list)
    cursor: HostCursor = field(default_factory=HostCursor)
    quarantined: list[tuple[Path, str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    left_in_place: list[str] = field(default_factory=list)
    routed: int = 0
    held: dict[str, int] = field(default_factory=dict)
    unsettled: int = 0
    log: list[str] = field(default_factory=list)

    def skip_reason(self) -> str | None:
        if self.launches:
            return None
        parts = []
        if self.quarantined:
            parts.append(f"{len(self.quarantined)} event(s) quarantined")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate(s) moved to processed")
        if self.left_in_place:
            parts.append(f"{len(self.left_in_place)} event(s) already have a run, left in place")
        if self.routed:
            parts.append(f"{self.routed} request(s) routed")
        for flow, count in sorted(self.held.items()):
            circuit = self.cursor.circuits.get(flow, CircuitState())
            parts.append(f"{count} event(s) for flow {flow!r} held: circuit {circuit.state}")
        if self.unsettled:
            parts.append(f"{self.unsettled} file(s) still being written")
        if not parts:
            return "Inbox empty: no events waiting."
        return "No run launched: " + "; ".join(parts) + "."


@dataclass
class Host:
    """Everything a tick needs that does not change between ticks."""

    inbox: Path
    plans: Mapping[str, FlowPlan]
    settings: HiveSettings
    registry: TransformRegistry
    ledger: RunLedger
    clock: Callable[[], float] = time.time

    @property
    def policy(self) -> CircuitPolicy:
        return CircuitPolicy(
            self.settings.circuit_failure_threshold,
            self.settings.circuit_cooldown_seconds,
            self.settings.circuit_cooldown_max_seconds,
        )


def run_tick(host: Host, cursor: HostCursor) -> TickResult:
    """Decide on at most `host_max_events_per_tick` events and say what happened."""
    result = TickResult(cursor=cursor.model_copy(deep=True))
    budget = host.settings.host_max_events_per_tick
    _ensure_folders(host)
    now = host.clock()

    budget -= _route_requests(host, result, budget)
    # Listed after routing: a request that made its flow's folder launches in this tick.
    flows = [name for name in streams(host.inbox) if name != REQUESTS]
    for flow in flows:
        _update_circuit(host, result, flow, now)
    _launch_events(host, result, flows, budget)
    return result


def _route_requests(host: Host, result: TickResult, budget: int) -> int:
    """Validate requests and move each into its flow's folder; returns how many were seen."""
    found = backlog(host.inbox, REQUESTS, result.cursor.streams.get(REQUESTS), budget)
    settle_ns, now_ns = _settle_ns(host), time.time_ns()
    seen_ids: set[str] = set()
    looked = 0
    for entry in found.entries:
        if not entry.settled(now_ns, settle_ns):
            result.unsettled += 1
            break
        looked += 1
        try:
            request = read_request(entry, host.settings.max_request_bytes)
            event = request_event(
                request, entry, host.plans.get(request.flow), host.settings, host.registry
            )
        except EventRejected as rejected:
            _reject(host, result, entry, rejected)
        else:
            target = host.inbox / event.flow / f"{request.id}{ROUTED_SUFFIX}"
            if request.id in seen_ids or target.exists() or _has_run(host, event.key):
                _duplicate(host, result, entry, event.key)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                entry.path.replace(target)
                result.routed += 1
                result.log.append(f"routed request {request.id} to flow {event.flow}")
            seen_ids.add(request.id)
        result.cursor.streams[REQUESTS] = entry.position
    return looked


def _update_circuit(host: Host, result: TickResult, flow: str, now: float) -> None:
    current = result.cursor.circuits.get(flow, CircuitState())
    trial: TrialOutcome = "none"
    if current.trial_key is not None:
        trial = host.ledger.event_outcome(current.trial_key)
    outcomes = host.ledger.outcomes(flow, host.settings.circuit_failure_threshold + 1)
    updated = advance(current, now, host.policy, outcomes, trial, host.ledger.reset_at(flow))
    if updated.state != current.state:
        when = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        note = f"circuit of flow {flow!r}: {current.state} -> {updated.state} at {when}"
        reopens = updated.reopens_at(host.policy)
        if reopens is not None:
            note += f", cool-down until {datetime.fromtimestamp(reopens, UTC):%H:%M:%S} UTC"
        result.log.append(note)
    if updated != CircuitState() or flow in result.cursor.circuits:
        result.cursor.circuits[flow] = updated


def _launch_events(host: Host, result: TickResult, flows: list[str], budget: int) -> None:
    """Oldest first across flows, each flow's stream in order, within the budget."""
    candidates: list[Entry] = []
    allowance: dict[str, int | None] = {}
    for flow in flows:
        circuit = result.cursor.circuits.get(flow, CircuitState())
        allowance[flow] = circuit.allows()
        found = backlog(host.inbox, flow, result.cursor.streams.get(flow), budget)
        if allowance[flow] == 0:
            if found.waiting:
                result.held[flow] = found.waiting
            continue
        candidates.extend(found.entries)

    settle_ns, now_ns = _settle_ns(host), time.time_ns()
    stopped: set[str] = set()
    keys: set[str] = set()
    for entry in sorted(candidates, key=lambda e: e.position.key()):
        flow = entry.stream
        if budget <= 0:
            break
        if flow in stopped:
            continue
        if allowance[flow] == 0:
            result.held[flow] = result.held.get(flow, 0) + 1
            stopped.add(flow)
            continue
        if not entry.settled(now_ns, settle_ns):
            result.unsettled += 1
            stopped.add(flow)
            continue
        budget -= 1
        _decide(host, result, entry, keys, allowance)
        result.cursor.streams[flow] = entry.position


def _decide(
    host: Host,
    result: TickResult,
    entry: Entry,
    keys: set[str],
    allowance: dict[str, int | None],
) -> None:
    flow = entry.stream
    plan = host.plans.get(flow)
    try:
        if entry.is_routed_request:
            request = read_request(entry, host.settings.max_request_bytes)
            event = request_event(request, entry, plan, host.settings, host.registry)
        else:
            event = file_event(entry, plan, host.settings, host.registry)
    except EventRejected as rejected:
        _reject(host, result, entry, rejected)
        return
    if event.key in keys:
        _duplicate(host, result, entry, event.key)
        return
    existing = host.ledger.event_outcome(event.key)
    if existing == "success":
        _duplicate(host, result, entry, event.key)
        return
    if existing != "missing":
        # Its run is queued, running or failed and reads (or read) this very file: leave it
        # where it is; the status sensors move it or record its failure.
        result.left_in_place.append(event.key)
        result.log.append(f"event {event.key} already has a run ({existing}); file left in place")
        return
    keys.add(event.key)
    result.launches.append(event)
    if allowance[flow] == 1:
        allowance[flow] = 0
        circuit = result.cursor.circuits.get(flow, CircuitState())
        result.cursor.circuits[flow] = with_trial(circuit, event.key, host.clock())
        result.log.append(f"circuit of flow {flow!r}: half-open trial with event {event.key}")


def _reject(host: Host, result: TickResult, entry: Entry, rejected: EventRejected) -> None:
    target = quarantine(host.inbox, entry, rejected.kind, rejected.reason)
    result.quarantined.append((target, rejected.kind, rejected.reason))
    result.log.append(f"quarantined {entry.stream}/{entry.path.name}: {rejected.reason}")


def _duplicate(host: Host, result: TickResult, entry: Entry, key: str) -> None:
    move_to_processed(host.inbox, entry.stream, entry.path, note=f"duplicate of event {key}")
    result.duplicates.append(key)
    result.log.append(f"duplicate {entry.stream}/{entry.path.name}: event {key} already ran")


def _has_run(host: Host, key: str) -> bool:
    return host.ledger.event_outcome(key) != "missing"


def _ensure_folders(host: Host) -> None:
    """The folders users drop events into: requests/ and one per flow that takes files."""
    (host.inbox / REQUESTS).mkdir(parents=True, exist_ok=True)
    for name, plan in host.plans.items():
        if plan.spec.host.input_node is not None:
            (host.inbox / name).mkdir(exist_ok=True)


def _settle_ns(host: Host) -> int:
    return int(host.settings.host_settle_seconds * 1e9)
