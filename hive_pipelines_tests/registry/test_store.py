"""Registry partitions on disk: one Parquet file per asset and day."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hive_pipelines.registry.assignments import RunInfo, StepEvent, task_assignments
from hive_pipelines.registry.store import RegistryStore


def day_frame(day: str, rows: int) -> pd.DataFrame:
    return pd.DataFrame({"day": [day] * rows, "n": range(rows)})


def test_read_loads_the_one_partition_asked_for(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry")
    store.write("task_assignments", "2026-03-14", day_frame("2026-03-14", 2))
    store.write("task_assignments", "2026-03-15", day_frame("2026-03-15", 3))
    store.write("worker_days", "2026-03-15", day_frame("worker", 1))

    frame = store.read("task_assignments", "2026-03-15")

    pd.testing.assert_frame_equal(frame, day_frame("2026-03-15", 3))
    assert store.path("task_assignments", "2026-03-15") == (
        tmp_path / "registry" / "task_assignments" / "day=2026-03-15.parquet"
    )


def test_reading_a_missing_day_names_it(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry")
    store.write("task_assignments", "2026-03-15", day_frame("2026-03-15", 1))

    with pytest.raises(FileNotFoundError) as raised:
        store.read("task_assignments", "2026-03-16")

    message = str(raised.value)
    assert "task_assignments 2026-03-16" in message
    assert str(store.path("task_assignments", "2026-03-16")) in message


def test_task_assignments_keep_their_types_on_disk(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry")
    run = RunInfo("run-1", "orders", None, end_time=1_773_576_000.0)
    frame = task_assignments(
        [run],
        [
            StepEvent("run-1", "a", "STEP_START", 1_773_575_990.123456, worker="h:1"),
            StepEvent("run-1", "a", "STEP_SUCCESS", 1_773_575_991.5),
            StepEvent("run-1", "b", "STEP_SKIPPED", 1_773_575_992.0),
        ],
    )

    store.write("task_assignments", "2026-03-15", frame)

    pd.testing.assert_frame_equal(store.read("task_assignments", "2026-03-15"), frame)


def test_days_lists_partition_files_only_oldest_first(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry")
    assert store.days("task_assignments") == []
    for day in ("2026-03-15", "2025-12-31", "2026-01-02"):
        store.write("task_assignments", day, day_frame(day, 1))
    folder = tmp_path / "registry" / "task_assignments"
    (folder / ".day=2026-03-16.parquet.123.partial").write_bytes(b"half")
    (folder / "notes.txt").write_text("not a partition")
    (folder / "day=2026-3-1.parquet").write_bytes(b"badly named")

    assert store.days("task_assignments") == ["2025-12-31", "2026-01-02", "2026-03-15"]
    assert store.days("worker_days") == []


def test_writing_a_day_again_replaces_it_and_leaves_no_partial_file(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry")
    store.write("worker_days", "2026-03-15", day_frame("first", 5))

    store.write("worker_days", "2026-03-15", day_frame("second", 2))

    pd.testing.assert_frame_equal(store.read("worker_days", "2026-03-15"), day_frame("second", 2))
    assert [p.name for p in (tmp_path / "registry" / "worker_days").iterdir()] == [
        "day=2026-03-15.parquet"
    ]


def test_delete_says_whether_the_file_was_there(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry")
    store.write("worker_days", "2026-03-15", day_frame("2026-03-15", 1))
    size = store.size_bytes()
    assert size == store.path("worker_days", "2026-03-15").stat().st_size > 0

    assert store.delete("worker_days", "2026-03-15") is True
    assert store.delete("worker_days", "2026-03-15") is False
    assert store.delete("task_assignments", "2026-03-15") is False
    assert store.days("worker_days") == []
    assert store.size_bytes() == 0
    assert RegistryStore(tmp_path / "nowhere").size_bytes() == 0
