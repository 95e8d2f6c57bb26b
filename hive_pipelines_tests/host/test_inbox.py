"""The inbox on a real folder: streams, arrival order, and where decided events go."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hive_pipelines.host.inbox import (
    Position,
    backlog,
    content_hash,
    move_to_processed,
    quarantine,
    record_failure,
    streams,
    write_json,
)


def put(folder: Path, name: str, data: bytes = b"x") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    time.sleep(0.01)  # a later inode change time for the next file, even on coarse clocks
    return path


def names(found: list) -> list[str]:
    return [entry.path.name for entry in found]


def test_streams_are_the_visible_folders_of_the_inbox(tmp_path: Path) -> None:
    for folder in ("requests", "flow_a", ".quarantine", ".processed", ".uploads"):
        (tmp_path / folder).mkdir()
    (tmp_path / "loose.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "flow_a")

    assert streams(tmp_path) == ["flow_a", "requests"]


def test_streams_of_a_missing_inbox_are_none(tmp_path: Path) -> None:
    assert streams(tmp_path / "nowhere") == []


def test_backlog_is_in_arrival_order_not_name_order(tmp_path: Path) -> None:
    for name in ("c.csv", "a.csv", "b.csv"):
        put(tmp_path / "flow", name)

    found = backlog(tmp_path, "flow", None, limit=10)

    assert names(found.entries) == ["c.csv", "a.csv", "b.csv"]
    assert found.waiting == 3


def test_backlog_orders_by_change_time_even_with_an_old_modification_time(
    tmp_path: Path,
) -> None:
    first = put(tmp_path / "flow", "new.csv")
    late = put(tmp_path / "elsewhere", "old.csv")
    os.utime(late, (1_000_000, 1_000_000))  # a modification time from 1970
    os.replace(late, tmp_path / "flow" / "old.csv")

    found = backlog(tmp_path, "flow", None, limit=10)

    assert names(found.entries) == [first.name, "old.csv"]


def test_backlog_gives_at_most_limit_oldest_and_counts_all_waiting(tmp_path: Path) -> None:
    paths = [put(tmp_path / "flow", f"{n}.csv") for n in range(5)]

    found = backlog(tmp_path, "flow", None, limit=2)

    assert names(found.entries) == ["0.csv", "1.csv"]
    assert found.waiting == 5
    assert found.oldest_ctime_ns == paths[0].stat().st_ctime_ns


def test_backlog_starts_after_the_position(tmp_path: Path) -> None:
    paths = [put(tmp_path / "flow", f"{n}.csv") for n in range(3)]
    after = Position(ctime_ns=paths[0].stat().st_ctime_ns, name=paths[0].name)

    found = backlog(tmp_path, "flow", after, limit=10)

    assert names(found.entries) == ["1.csv", "2.csv"]
    assert found.waiting == 2


def test_backlog_ignores_hidden_partial_files_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "flow"
    for name in (".hidden.csv", "a.csv.tmp", "b.csv.part", "c.csv.partial", "ok.csv"):
        put(folder, name)
    (folder / "sub").mkdir()

    found = backlog(tmp_path, "flow", None, limit=10)

    assert names(found.entries) == ["ok.csv"]


def test_backlog_marks_symlinks_and_sizes(tmp_path: Path) -> None:
    target = put(tmp_path, "target.csv", b"12345")
    put(tmp_path / "flow", "plain.csv", b"123")
    (tmp_path / "flow" / "link.csv").symlink_to(target)

    found = {e.path.name: e for e in backlog(tmp_path, "flow", None, limit=10).entries}

    assert (found["plain.csv"].is_symlink, found["plain.csv"].size) == (False, 3)
    assert found["link.csv"].is_symlink


def test_backlog_of_a_missing_stream_is_empty(tmp_path: Path) -> None:
    found = backlog(tmp_path, "nowhere", None, limit=10)

    assert (found.entries, found.waiting, found.oldest_ctime_ns) == ([], 0, None)


def test_entry_is_settled_only_after_the_settle_time(tmp_path: Path) -> None:
    put(tmp_path / "flow", "a.csv")
    [entry] = backlog(tmp_path, "flow", None, limit=1).entries
    ctime = entry.position.ctime_ns

    assert not entry.settled(ctime + 999, settle_ns=1000)
    assert entry.settled(ctime + 1000, settle_ns=1000)


def test_routed_request_is_settled_at_once(tmp_path: Path) -> None:
    put(tmp_path / "flow", "r1.request.json")
    [entry] = backlog(tmp_path, "flow", None, limit=1).entries

    assert entry.is_routed_request
    assert entry.settled(entry.position.ctime_ns, settle_ns=10**12)


def test_content_hash_is_sha256(tmp_path: Path) -> None:
    path = put(tmp_path, "a.csv", b"abc")

    assert content_hash(path, 3) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_content_hash_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    path = put(tmp_path, "a.csv", b"abcd")

    with pytest.raises(ValueError, match="grew past 3 bytes"):
        content_hash(path, 3)


def test_quarantine_moves_the_event_beside_its_reason(tmp_path: Path) -> None:
    put(tmp_path / "flow", "a.csv", b"data")
    [entry] = backlog(tmp_path, "flow", None, limit=1).entries

    target = quarantine(tmp_path, entry, "json", "The request is not valid JSON.")

    assert target.parent == tmp_path / ".quarantine" / "flow"
    assert target.name.endswith("-a.csv")
    assert target.read_bytes() == b"data"
    assert not entry.path.exists()
    reason = json.loads(target.with_name(target.name + ".reason.json").read_text())
    assert reason["kind"] == "json"
    assert reason["reason"] == "The request is not valid JSON."
    assert reason["event"] == str(entry.path)
    assert reason["stream"] == "flow"


def test_quarantine_of_a_second_event_with_the_same_name_keeps_both(tmp_path: Path) -> None:
    first = put(tmp_path / "flow", "a.csv", b"one")
    [entry] = backlog(tmp_path, "flow", None, limit=1).entries
    one = quarantine(tmp_path, entry, "json", "first")
    first.write_bytes(b"two")
    [entry] = backlog(tmp_path, "flow", None, limit=1).entries

    two = quarantine(tmp_path, entry, "json", "second")

    assert two != one
    assert (one.read_bytes(), two.read_bytes()) == (b"one", b"two")
    reason = json.loads(two.with_name(two.name + ".reason.json").read_text())
    assert reason["reason"] == "second"


def test_move_to_processed_keeps_both_copies_and_writes_the_note(tmp_path: Path) -> None:
    folder = tmp_path / ".processed" / "flow"
    first = move_to_processed(tmp_path, "flow", put(tmp_path / "flow", "a.csv", b"one"))
    second = move_to_processed(
        tmp_path, "flow", put(tmp_path / "flow", "a.csv", b"two"), note="duplicate of event k"
    )

    assert first == folder / "a.csv"
    assert second == folder / "a.2.csv"
    assert (first.read_bytes(), second.read_bytes()) == (b"one", b"two")
    note = json.loads((folder / "a.2.csv.note.json").read_text())
    assert note == {"note": "duplicate of event k"}


def test_move_to_processed_of_a_file_already_gone_is_none(tmp_path: Path) -> None:
    assert move_to_processed(tmp_path, "flow", tmp_path / "flow" / "gone.csv") is None


def test_record_failure_writes_the_record_and_leaves_the_event(tmp_path: Path) -> None:
    event = put(tmp_path / "flow", "a.csv")

    target = record_failure(tmp_path, "flow", "a.csv", {"run_id": "r1", "error": "boom"})

    assert target == tmp_path / ".failed" / "flow" / "a.csv.json"
    assert json.loads(target.read_text()) == {"run_id": "r1", "error": "boom"}
    assert event.exists()


def test_write_json_leaves_no_partial_file(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"a": 1})

    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 1}
