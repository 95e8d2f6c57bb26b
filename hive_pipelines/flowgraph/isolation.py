"""Hard timeouts: each node runs in a forked child process that can be killed.

Dagster has no per-op timeout, and a thread cannot stop a pure-Python loop or a blocking C
call. So the op forks a child that reads its inputs, runs the transform and writes its
output itself; the parent only waits, bounded by the timeout. On timeout the child's whole
process group is killed, its partial output removed, and the attempt fails with a message
naming the flow, node and limit. Forking costs a few milliseconds and shares memory
copy-on-write, so inputs are never serialised to reach the child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from hive_pipelines.flowgraph.tables import TableSummary, read_table, write_table
from hive_pipelines.transforms.registry import REGISTRY, TransformContext

_FORK = multiprocessing.get_context("fork")
MAX_ERROR_CHARS = 4000
MAX_TRACEBACK_CHARS = 20_000


@dataclass(frozen=True)
class NodeCall:
    """Everything a child process needs to run one node."""

    context: TransformContext
    transform: str
    params: dict[str, Any]
    input_paths: tuple[Path, ...]
    output_path: Path
    timeout_seconds: float
    compression: str = "none"
    preview_rows: int = 5


class NodeError(RuntimeError):
    """A node attempt failed; the message names the flow, node and transform."""


class NodeTimeoutError(NodeError):
    """The node ran past its timeout and was killed."""


class NodeCrashedError(NodeError):
    """The child process died without reporting a result (a signal, os._exit, OOM)."""


class TransformFailedError(NodeError):
    """The transform raised; `error_class` and `child_traceback` say what and where."""

    def __init__(self, message: str, error_class: str, child_traceback: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.child_traceback = child_traceback


def run_isolated(call: NodeCall, grace_seconds: float = 5.0) -> TableSummary:
    """Run one node in a child process, bounded by its timeout; return its output summary."""
    receiver, sender = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=_child_main, args=(call, sender), name=call.context.node)
    started = time.monotonic()
    try:
        child.start()
        sender.close()
        _own_group(child.pid)
        message = _await_message(receiver, child, started + call.timeout_seconds)
    finally:
        exitcode = _reap(child, grace_seconds)
        receiver.close()
        sender.close()

    where = f"node {call.context.node!r} of flow {call.context.flow!r}"
    if message is None and time.monotonic() - started >= call.timeout_seconds:
        _remove_partials(call.output_path)
        raise NodeTimeoutError(
            f"The {where} (transform {call.transform!r}) ran past its timeout of "
            f"{call.timeout_seconds:g} s and was stopped."
        )
    if message is None:
        _remove_partials(call.output_path)
        raise NodeCrashedError(
            f"The {where} (transform {call.transform!r}) died without a result "
            f"(exit code {exitcode}); a negative code is the signal that killed it."
        )
    if message[0] == "error":
        _, error_class, text, child_tb = message
        raise TransformFailedError(
            f"The {where} failed in transform {call.transform!r}: {error_class}: {text}",
            error_class,
            child_tb,
        )
    summary: TableSummary = message[1]
    return summary


def _await_message(receiver: Connection, child: Any, deadline: float) -> tuple[Any, ...] | None:
    """The child's one message, or None if it died or the deadline passed first."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready = wait([receiver, child.sentinel], timeout=remaining)
        if receiver in ready or receiver.poll(0):
            try:
                message: tuple[Any, ...] = receiver.recv()
            except EOFError:
                return None
            return message
        if child.sentinel in ready:
            return None


def _child_main(call: NodeCall, sender: Connection) -> None:
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        transform = REGISTRY.get(call.transform)
        params = transform.params_model.model_validate(call.params)
        frames = [read_table(path) for path in call.input_paths]
        result = transform(call.context, params, *frames)
        if not _is_frame(result):
            raise TypeError(
                f"Transform {call.transform!r} returned {type(result).__name__}, "
                "not a pandas DataFrame."
            )
        summary = write_table(result, call.output_path, call.compression, call.preview_rows)
        sender.send(("ok", summary))
    except BaseException as exc:
        text = str(exc)[:MAX_ERROR_CHARS]
        sender.send(
            ("error", type(exc).__name__, text, traceback.format_exc()[-MAX_TRACEBACK_CHARS:])
        )
    finally:
        sender.close()
        os._exit(0)


def _is_frame(value: object) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _own_group(pid: int | None) -> None:
    # Set from both sides so the group exists whichever runs first.
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.setpgid(pid, pid)


def _reap(child: Any, grace_seconds: float) -> int | None:
    """Kill the child's process group (grandchildren too), wait for it, bounded; its exit code."""
    if child.pid is None:
        return None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.join(grace_seconds)
    if child.is_alive():
        child.kill()
        child.join(grace_seconds)
    exitcode: int | None = child.exitcode  # read before close(), which forbids it
    if not child.is_alive():
        child.close()
    return exitcode


def _remove_partials(output_path: Path) -> None:
    for partial in output_path.parent.glob(f".{output_path.name}.*.partial"):
        partial.unlink(missing_ok=True)
