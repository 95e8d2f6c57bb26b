"""run_isolated on its own, without Dagster: results, errors, crashes, timeouts, no leaks."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from hive_pipelines.flowgraph.isolation import (
    NodeCall,
    NodeCrashedError,
    NodeTimeoutError,
    TransformFailedError,
    run_isolated,
)
from hive_pipelines.flowgraph.tables import TableSummary, read_table, write_table
from hive_pipelines.transforms.registry import TransformContext, TransformRegistry

GRACE_SECONDS = 2.0


@pytest.fixture(autouse=True)
def _support_transforms(registry: TransformRegistry) -> None:
    """Registers the built-in and test-only transforms in this process."""


def node_call(
    tmp_path: Path,
    transform: str,
    params: dict[str, Any] | None = None,
    inputs: tuple[Path, ...] = (),
    timeout_seconds: float = 30.0,
) -> NodeCall:
    return NodeCall(
        context=TransformContext(
            flow="iso_flow",
            node="iso_node",
            run_id="run-1",
            inputs=tuple(path.stem for path in inputs),
        ),
        transform=transform,
        params=params or {},
        input_paths=inputs,
        output_path=tmp_path / "out" / "iso_node.parquet",
        timeout_seconds=timeout_seconds,
    )


def _new_processes(before: set[tuple[int, float]]) -> list[psutil.Process]:
    alive = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if (proc.pid, proc.create_time()) in before:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def _children_now() -> set[tuple[int, float]]:
    seen = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            seen.add((proc.pid, proc.create_time()))
        except psutil.NoSuchProcess:
            continue
    return seen


@contextmanager
def no_leaks(tmp_path: Path) -> Iterator[None]:
    """The block leaves no open file descriptor, child process or partial file behind."""
    me = psutil.Process()
    fds_before = me.num_fds()
    children_before = _children_now()
    yield
    assert me.num_fds() == fds_before
    assert _new_processes(children_before) == []
    assert list(tmp_path.rglob("*.partial")) == []


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for init to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_success_returns_summary_of_written_output(tmp_path: Path) -> None:
    source = pd.DataFrame({"x": [3, 1, 2], "label": ["c", "a", "b"]})
    source_path = tmp_path / "in" / "source.parquet"
    write_table(source, source_path)
    call = node_call(
        tmp_path, "sort_rows", {"by": ["x"], "descending": True}, inputs=(source_path,)
    )

    with no_leaks(tmp_path):
        summary = run_isolated(call, GRACE_SECONDS)

    assert isinstance(summary, TableSummary)
    assert summary.path == str(call.output_path)
    assert summary.rows == 3
    assert summary.columns == {"x": "int64", "label": "large_string"}
    assert summary.preview == [
        {"x": "3", "label": "c"},
        {"x": "2", "label": "b"},
        {"x": "1", "label": "a"},
    ]
    assert summary.size_bytes == call.output_path.stat().st_size > 0
    expected = source.sort_values("x", ascending=False).reset_index(drop=True)
    pd.testing.assert_frame_equal(read_table(call.output_path), expected)


def test_preview_is_limited_to_preview_rows(tmp_path: Path) -> None:
    call = node_call(tmp_path, "make_rows", {"rows": 8})
    call = dataclasses.replace(call, preview_rows=2)

    summary = run_isolated(call, GRACE_SECONDS)

    assert summary.rows == 8
    assert summary.preview == [{"n": "0", "node": "iso_node"}, {"n": "1", "node": "iso_node"}]


def test_transform_exception_becomes_transform_failed_error(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    call = node_call(tmp_path, "fail_then_succeed", {"counter_file": str(counter), "fail_times": 1})

    with no_leaks(tmp_path), pytest.raises(TransformFailedError) as caught:
        run_isolated(call, GRACE_SECONDS)

    error = caught.value
    assert error.error_class == "RuntimeError"
    assert str(error) == (
        "The node 'iso_node' of flow 'iso_flow' failed in transform 'fail_then_succeed': "
        "RuntimeError: planned failure on attempt 1"
    )
    # The traceback is the child's: it reaches into the transform's own source.
    assert "support_transforms.py" in error.child_traceback
    assert "in fail_then_succeed" in error.child_traceback
    assert error.child_traceback.rstrip().endswith("RuntimeError: planned failure on attempt 1")
    assert counter.read_text() == "1"
    assert not call.output_path.exists()


def test_params_that_do_not_fit_fail_in_the_child(tmp_path: Path) -> None:
    call = node_call(tmp_path, "make_rows", {"rows": -1})

    with pytest.raises(TransformFailedError) as caught:
        run_isolated(call, GRACE_SECONDS)

    assert caught.value.error_class == "ValidationError"
    assert "rows" in str(caught.value)


@pytest.mark.parametrize(
    ("how", "exit_code"), [("exit", 3), ("sigkill", -9)], ids=["os_exit", "sigkill"]
)
def test_child_that_dies_becomes_node_crashed_error(
    tmp_path: Path, how: str, exit_code: int
) -> None:
    call = node_call(tmp_path, "die", {"how": how, "code": 3})

    with no_leaks(tmp_path), pytest.raises(NodeCrashedError) as caught:
        run_isolated(call, GRACE_SECONDS)

    message = str(caught.value)
    assert "node 'iso_node' of flow 'iso_flow' (transform 'die')" in message
    assert f"died without a result (exit code {exit_code})" in message
    assert not isinstance(caught.value, NodeTimeoutError)


def test_timeout_kills_the_child_and_its_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    call = node_call(tmp_path, "spawn_and_hang", {"pid_file": str(pid_file)}, timeout_seconds=1)

    started = time.monotonic()
    with no_leaks(tmp_path), pytest.raises(NodeTimeoutError) as caught:
        run_isolated(call, GRACE_SECONDS)
    elapsed = time.monotonic() - started

    assert str(caught.value) == (
        "The node 'iso_node' of flow 'iso_flow' (transform 'spawn_and_hang') ran past its "
        "timeout of 1 s and was stopped."
    )
    assert 1.0 <= elapsed < 1.0 + GRACE_SECONDS + 10
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild), f"the grandchild `sleep 1000` (pid {grandchild}) survived"


@pytest.mark.parametrize("how", ["loop", "sleep", "blocking_read"])
def test_timeout_stops_every_kind_of_hang(tmp_path: Path, how: str) -> None:
    call = node_call(tmp_path, "hang", {"how": how}, timeout_seconds=0.5)

    started = time.monotonic()
    with no_leaks(tmp_path), pytest.raises(NodeTimeoutError, match=r"timeout of 0\.5 s"):
        run_isolated(call, GRACE_SECONDS)

    assert time.monotonic() - started < 0.5 + GRACE_SECONDS + 10


def test_timeout_removes_partial_output(tmp_path: Path) -> None:
    """A partial file the killed child left behind is removed; other files are kept."""
    call = node_call(tmp_path, "hang", {"how": "sleep"}, timeout_seconds=0.5)
    call.output_path.parent.mkdir(parents=True)
    partial = call.output_path.with_name(f".{call.output_path.name}.12345.partial")
    partial.write_bytes(b"half a table")
    neighbour = call.output_path.with_name("other.parquet")
    neighbour.write_bytes(b"kept")

    with pytest.raises(NodeTimeoutError):
        run_isolated(call, GRACE_SECONDS)

    assert not partial.exists()
    assert neighbour.read_bytes() == b"kept"


def test_many_runs_leave_file_descriptors_unchanged(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    failing = {"counter_file": str(counter)}
    outcomes: list[tuple[NodeCall, type[Exception] | None]] = [
        (node_call(tmp_path, "make_rows", {"rows": 2}), None),
        (node_call(tmp_path, "fail_then_succeed", failing), TransformFailedError),
        (node_call(tmp_path, "die", {"how": "exit"}), NodeCrashedError),
        (
            node_call(tmp_path, "hang", {"how": "blocking_read"}, timeout_seconds=0.2),
            NodeTimeoutError,
        ),
    ]
    fds_before = psutil.Process().num_fds()
    for _ in range(3):
        for call, expected in outcomes:
            counter.unlink(missing_ok=True)
            if expected is None:
                assert run_isolated(call, GRACE_SECONDS).rows == 2
            else:
                with pytest.raises(expected):
                    run_isolated(call, GRACE_SECONDS)
    assert psutil.Process().num_fds() == fds_before
    assert os.listdir(tmp_path / "out") == ["iso_node.parquet"]
