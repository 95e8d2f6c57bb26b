"""The inbox sensor, evaluated for real: run requests, skip reasons and the cursor it keeps.

Each test writes its flows to the temporary flows folder of `hive_env`, drops files in the
temporary inbox and evaluates the project's own `inbox_sensor` against a real instance.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from hive_pipelines.host.tick import HostCursor
from hive_pipelines_tests.defs.host.support import (
    DROPS_FLOW,
    GITHUB_ACTIVITY,
    GOOD_LINES,
    HOUR_0,
    HOUR_1,
    NUMBERS_FLOW,
    Tick,
    arrive_in_order,
    copy_in,
    deliver,
    deliver_request,
    execute,
    files_under,
    inbox_dir,
    project_host,
    quarantined,
    read_json,
    tick,
    use_settings,
    write_flow,
)

EMPTY = "Inbox empty: no events waiting."
ONE_QUARANTINED = "No run launched: 1 event(s) quarantined."


@pytest.fixture(autouse=True)
def flows(hive_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three flows (GH Archive activity, `drops` fed by files, `numbers` fed by requests),
    and no settle time, so a file is an event as soon as it is in the inbox."""
    use_settings(monkeypatch, host_settle_seconds=0)
    write_flow(hive_env, DROPS_FLOW)
    write_flow(hive_env, NUMBERS_FLOW)
    (hive_env / GITHUB_ACTIVITY.name).write_bytes(GITHUB_ACTIVITY.read_bytes())
    return hive_env


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only_quarantined(result: Tick, stream: str, name: str, kind: str) -> dict[str, object]:
    """The tick launched nothing, quarantined exactly `stream/name` with `kind`, moved past it."""
    assert result.requests == []
    assert result.skip == ONE_QUARANTINED
    [(moved, reason)] = quarantined(stream)
    assert moved.name.endswith(f"-{name}")
    assert reason["kind"] == kind
    assert reason["stream"] == stream
    assert reason["event"] == str(inbox_dir() / stream / name)
    assert not os.path.lexists(inbox_dir() / stream / name)
    assert result.state.streams[stream].name == name
    return reason


# Nothing to do -------------------------------------------------------------------------


def test_empty_inbox_skips_with_inbox_empty_and_writes_a_cursor(
    instance: dg.DagsterInstance,
) -> None:
    result = tick(project_host(), instance)

    assert result.requests == []
    assert result.skip == EMPTY
    assert result.cursor is not None
    assert result.state == HostCursor()
    # The tick makes the folders users drop events into: requests/ and each file-fed flow's.
    assert sorted(p.name for p in inbox_dir().iterdir()) == ["drops", "github_activity", "requests"]


def test_hidden_and_partial_files_are_ignored_until_renamed_into_place(
    instance: dg.DagsterInstance,
) -> None:
    host = project_host()
    for name in (".hidden.jsonl", "a.jsonl.tmp", "b.jsonl.part", "c.jsonl.partial"):
        deliver("drops", name, GOOD_LINES)
    deliver("requests", ".draft.json", b"{")
    deliver("requests", "r.json.tmp", b"{")

    first = tick(host, instance)
    assert first.skip == EMPTY
    assert quarantined("drops") == quarantined("requests") == []
    assert len(files_under(inbox_dir() / "drops")) == 4

    os.replace(inbox_dir() / "drops" / "a.jsonl.tmp", inbox_dir() / "drops" / "a.jsonl")
    second = tick(host, instance, first.cursor)
    assert second.paths == ["drops/a.jsonl"]


# Data files become run requests -----------------------------------------------------------


def test_gharchive_hour_in_its_flow_folder_becomes_one_run_request(
    instance: dg.DagsterInstance,
) -> None:
    path = copy_in("github_activity", HOUR_0)
    digest = sha256(path)
    key = f"file:github_activity/2015-01-01-0.json.gz@{digest[:24]}"

    result = tick(project_host(), instance)

    assert result.skip is None
    [request] = result.requests
    assert request.run_key == key
    assert request.job_name == "github_activity"
    assert request.run_config == {
        "ops": {
            "events_raw": {
                "config": {
                    "params": {"path": "github_activity/2015-01-01-0.json.gz", "root": "inbox"}
                }
            }
        }
    }
    expected_tags = {
        "hive/source": "host",
        "hive/flow": "github_activity",
        "hive/event_key": key,
        "hive/event_id": f"2015-01-01-0.json.gz@{digest[:12]}",
        "hive/event_source": "file",
        "hive/event_path": "github_activity/2015-01-01-0.json.gz",
    }
    assert {name: request.tags.get(name) for name in expected_tags} == expected_tags
    position = result.state.streams["github_activity"]
    assert (position.ctime_ns, position.name) == (path.stat().st_ctime_ns, path.name)
    assert path.exists(), "the event stays in the inbox until its run finishes"


def test_files_are_taken_in_arrival_order_not_name_order(instance: dg.DagsterInstance) -> None:
    copy_in("github_activity", HOUR_1)
    time.sleep(0.01)
    copy_in("github_activity", HOUR_0)

    result = tick(project_host(), instance)

    assert result.paths == [
        "github_activity/2015-01-01-1.json.gz",
        "github_activity/2015-01-01-0.json.gz",
    ]


def test_batch_of_seven_with_a_bound_of_three_is_taken_three_oldest_at_a_time(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, host_max_events_per_tick=3)
    host = project_host()
    # Names in reverse order of arrival: only the arrival order can give the expected batches.
    names = [f"{letter}.jsonl" for letter in "gfedcba"]
    arrive_in_order("drops", names, lambda name: name.encode())

    first = tick(host, instance)
    assert first.paths == ["drops/g.jsonl", "drops/f.jsonl", "drops/e.jsonl"]
    assert first.state.streams["drops"].name == "e.jsonl"

    second = tick(host, instance, first.cursor)
    assert second.paths == ["drops/d.jsonl", "drops/c.jsonl", "drops/b.jsonl"]
    assert second.state.streams["drops"].name == "b.jsonl"

    third = tick(host, instance, second.cursor)
    assert third.paths == ["drops/a.jsonl"]
    assert third.state.streams["drops"].name == "a.jsonl"

    fourth = tick(host, instance, third.cursor)
    assert fourth.skip == EMPTY


def test_duplicate_delivery_after_its_run_exists_is_moved_to_processed_with_a_note(
    instance: dg.DagsterInstance,
) -> None:
    host = project_host()
    deliver("drops", "day.jsonl", GOOD_LINES)
    first = tick(host, instance)
    [request] = first.requests
    assert execute(host, instance, request).success
    # The producer sends the same file again, after the first copy was dealt with.
    (inbox_dir() / "drops" / "day.jsonl").unlink()
    again = deliver("drops", "day.jsonl", GOOD_LINES)

    second = tick(host, instance, first.cursor)

    assert second.requests == []
    assert second.skip == "No run launched: 1 duplicate(s) moved to processed."
    assert not again.exists()
    processed = inbox_dir() / ".processed" / "drops"
    assert (processed / "day.jsonl").read_bytes() == GOOD_LINES
    note = read_json(processed / "day.jsonl.note.json")
    assert note == {"note": f"duplicate of event {request.run_key}"}
    assert second.state.streams["drops"].ctime_ns > first.state.streams["drops"].ctime_ns


def test_rewritten_file_with_new_content_gets_a_new_run_key(
    instance: dg.DagsterInstance,
) -> None:
    host = project_host()
    path = deliver("drops", "day.jsonl", GOOD_LINES)
    first = tick(host, instance)
    [old] = first.requests
    assert execute(host, instance, old).success
    path.write_bytes(b'{"a": 3}\n')

    second = tick(host, instance, first.cursor)

    [new] = second.requests
    assert new.run_key != old.run_key
    assert (new.run_key or "").startswith("file:drops/day.jsonl@")
    assert new.tags["hive/event_path"] == old.tags["hive/event_path"] == "drops/day.jsonl"


# Requests --------------------------------------------------------------------------------


def test_request_is_routed_to_its_flow_and_launched_with_its_params(
    instance: dg.DagsterInstance,
) -> None:
    deliver_request("ask.json", {"id": "job-1", "flow": "numbers", "params": {"numbers": {}}})

    result = tick(project_host(), instance)

    [request] = result.requests
    assert request.run_key == "request:job-1"
    assert request.job_name == "numbers"
    assert request.run_config == {"ops": {"numbers": {"config": {"params": {}}}}}
    assert request.tags["hive/event_source"] == "request"
    assert request.tags["hive/event_id"] == "job-1"
    assert request.tags["hive/event_path"] == "numbers/job-1.request.json"
    assert files_under(inbox_dir()) == ["numbers/job-1.request.json"]
    assert result.state.streams["requests"].name == "ask.json"
    assert result.state.streams["numbers"].name == "job-1.request.json"


def test_two_requests_with_one_id_in_the_same_tick_make_one_run(
    instance: dg.DagsterInstance,
) -> None:
    ask = {"id": "job-1", "flow": "numbers", "params": {"numbers": {"rows": 5}}}
    deliver_request("first.json", ask)
    time.sleep(0.01)
    deliver_request("second.json", ask)

    result = tick(project_host(), instance)

    [request] = result.requests
    assert request.run_key == "request:job-1"
    assert request.run_config == {"ops": {"numbers": {"config": {"params": {"rows": 5}}}}}
    processed = inbox_dir() / ".processed" / "requests"
    assert read_json(processed / "second.json.note.json") == {
        "note": "duplicate of event request:job-1"
    }
    assert files_under(inbox_dir() / "requests") == []


def test_request_whose_id_already_ran_is_a_duplicate(instance: dg.DagsterInstance) -> None:
    host = project_host()
    deliver_request("ask.json", {"id": "job-1", "flow": "numbers"})
    first = tick(host, instance)
    [request] = first.requests
    assert execute(host, instance, request).success
    (inbox_dir() / "numbers" / "job-1.request.json").unlink()  # as event_done_sensor would
    deliver_request("again.json", {"id": "job-1", "flow": "numbers"})

    second = tick(host, instance, first.cursor)

    assert second.requests == []
    assert second.skip == "No run launched: 1 duplicate(s) moved to processed."
    assert (inbox_dir() / ".processed" / "requests" / "again.json").exists()


def test_request_with_an_input_file_passes_its_path_to_the_input_node(
    instance: dg.DagsterInstance,
) -> None:
    host = project_host()
    deliver(".uploads", "day.jsonl", GOOD_LINES)
    ask = {"id": "load-1", "flow": "drops", "inputs": [{"path": ".uploads/day.jsonl"}]}
    deliver_request("ask.json", ask)

    result = tick(host, instance)

    [request] = result.requests
    assert request.run_config == {
        "ops": {"raw": {"config": {"params": {"path": ".uploads/day.jsonl", "root": "inbox"}}}}
    }
    assert execute(host, instance, request).success


# Rejections: each quarantined with a reason file -------------------------------------------


def test_data_file_for_an_unknown_flow_is_quarantined(instance: dg.DagsterInstance) -> None:
    deliver("nosuch", "day.jsonl", GOOD_LINES)

    result = tick(project_host(), instance)

    reason = only_quarantined(result, "nosuch", "day.jsonl", "unknown_flow")
    assert "'nosuch'" in str(reason["reason"])


def test_request_with_params_that_do_not_fit_is_quarantined(
    instance: dg.DagsterInstance,
) -> None:
    deliver_request(
        "ask.json", {"id": "r1", "flow": "numbers", "params": {"numbers": {"rows": -1}}}
    )

    result = tick(project_host(), instance)

    reason = only_quarantined(result, "requests", "ask.json", "params")
    assert "field `rows`" in str(reason["reason"])


def test_data_file_over_max_event_file_bytes_is_quarantined(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, max_event_file_bytes=10)
    deliver("drops", "big.jsonl", GOOD_LINES)

    result = tick(project_host(), instance)

    reason = only_quarantined(result, "drops", "big.jsonl", "too_large")
    assert f"{len(GOOD_LINES)} bytes, over the limit of 10 (HIVE_MAX_EVENT_FILE_BYTES)" in str(
        reason["reason"]
    )


def test_request_that_is_not_utf8_is_quarantined(instance: dg.DagsterInstance) -> None:
    deliver("requests", "latin.json", '{"id": "caf\u00e9", "flow": "numbers"}'.encode("latin-1"))

    result = tick(project_host(), instance)

    only_quarantined(result, "requests", "latin.json", "encoding")


def test_request_that_is_not_json_is_quarantined(instance: dg.DagsterInstance) -> None:
    deliver("requests", "broken.json", b"{id: r1, flow: numbers")

    result = tick(project_host(), instance)

    only_quarantined(result, "requests", "broken.json", "json")


def test_request_with_the_wrong_schema_is_quarantined(instance: dg.DagsterInstance) -> None:
    deliver_request("ask.json", {"id": "r1", "flow": "numbers", "colour": "red"})

    result = tick(project_host(), instance)

    reason = only_quarantined(result, "requests", "ask.json", "schema")
    assert "colour" in str(reason["reason"])


def test_request_input_escaping_the_inbox_with_dotdot_is_quarantined(
    instance: dg.DagsterInstance,
) -> None:
    (inbox_dir().parent / "secret.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (inbox_dir().parent / "secret.jsonl").write_bytes(GOOD_LINES)
    ask = {"id": "r1", "flow": "drops", "inputs": [{"path": "../secret.jsonl"}]}
    deliver_request("ask.json", ask)

    result = tick(project_host(), instance)

    only_quarantined(result, "requests", "ask.json", "path_escape")


def test_request_input_with_an_absolute_path_elsewhere_is_quarantined(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(GOOD_LINES)
    deliver_request("ask.json", {"id": "r1", "flow": "drops", "inputs": [{"path": str(elsewhere)}]})

    result = tick(project_host(), instance)

    only_quarantined(result, "requests", "ask.json", "path_escape")


def test_symlink_as_an_event_file_is_quarantined(instance: dg.DagsterInstance) -> None:
    target = deliver(".uploads", "day.jsonl", GOOD_LINES)
    (inbox_dir() / "drops").mkdir()
    (inbox_dir() / "drops" / "link.jsonl").symlink_to(target)

    result = tick(project_host(), instance)

    only_quarantined(result, "drops", "link.jsonl", "symlink")
    assert target.read_bytes() == GOOD_LINES, "the link's target is left alone"


def test_request_input_through_a_symlinked_folder_is_quarantined(
    instance: dg.DagsterInstance,
) -> None:
    deliver(".uploads", "day.jsonl", GOOD_LINES)
    (inbox_dir() / "shortcut").symlink_to(inbox_dir() / ".uploads")
    ask = {"id": "r1", "flow": "drops", "inputs": [{"path": "shortcut/day.jsonl"}]}
    deliver_request("ask.json", ask)

    result = tick(project_host(), instance)

    reason = only_quarantined(result, "requests", "ask.json", "symlink")
    assert "symbolic link" in str(reason["reason"])


def test_data_file_for_a_flow_without_host_input_node_is_quarantined(
    instance: dg.DagsterInstance,
) -> None:
    deliver("numbers", "day.jsonl", GOOD_LINES)

    result = tick(project_host(), instance)

    reason = only_quarantined(result, "numbers", "day.jsonl", "no_input")
    assert "host.input_node" in str(reason["reason"])


def test_quarantined_events_are_not_seen_again(instance: dg.DagsterInstance) -> None:
    host = project_host()
    deliver("requests", "broken.json", b"{")
    first = tick(host, instance)
    assert first.skip == ONE_QUARANTINED

    second = tick(host, instance, first.cursor)
    third = tick(host, instance)  # even without a cursor: .quarantine is not a stream

    assert second.skip == third.skip == EMPTY


def test_rejected_event_does_not_stop_the_events_behind_it(
    instance: dg.DagsterInstance,
) -> None:
    target = deliver(".uploads", "day.jsonl", GOOD_LINES)
    (inbox_dir() / "drops").mkdir()
    (inbox_dir() / "drops" / "first.jsonl").symlink_to(target)
    time.sleep(0.01)
    deliver("drops", "second.jsonl", GOOD_LINES)

    result = tick(project_host(), instance)

    assert result.paths == ["drops/second.jsonl"]
    [(moved, reason)] = quarantined("drops")
    assert moved.name.endswith("-first.jsonl")
    assert reason["kind"] == "symlink"


# Files still being written ---------------------------------------------------------------


def test_file_younger_than_the_settle_time_is_not_decided(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, host_settle_seconds=60)
    path = deliver("drops", "day.jsonl", GOOD_LINES)

    result = tick(project_host(), instance)

    assert result.requests == []
    assert result.skip == "No run launched: 1 file(s) still being written."
    assert "drops" not in result.state.streams
    assert path.exists()


def test_cursor_does_not_pass_a_file_still_being_written(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle = 1.0
    use_settings(monkeypatch, host_settle_seconds=settle)
    host = project_host()
    deliver("drops", "old.jsonl", GOOD_LINES)
    time.sleep(settle + 0.1)
    young = deliver("drops", "young.jsonl", GOOD_LINES)

    first = tick(host, instance)
    assert first.paths == ["drops/old.jsonl"]
    assert first.state.streams["drops"].name == "old.jsonl"

    second = tick(host, instance, first.cursor)
    assert time.time_ns() - young.stat().st_ctime_ns < settle * 1e9, "the test ran too slowly"
    assert second.requests == []
    assert second.skip == "No run launched: 1 file(s) still being written."
    assert second.state.streams["drops"].name == "old.jsonl"

    time.sleep(max(0.0, settle - (time.time_ns() - young.stat().st_ctime_ns) / 1e9) + 0.05)
    third = tick(host, instance, second.cursor)
    assert third.paths == ["drops/young.jsonl"]


def test_routed_request_waits_behind_a_file_still_being_written(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle = 1.0
    use_settings(monkeypatch, host_settle_seconds=settle)
    deliver(".uploads", "day.jsonl", GOOD_LINES)
    ask = {"id": "load-1", "flow": "drops", "inputs": [{"path": ".uploads/day.jsonl"}]}
    deliver_request("ask.json", ask)
    time.sleep(settle + 0.1)
    young = deliver("drops", "young.jsonl", GOOD_LINES)

    result = tick(project_host(), instance)

    assert time.time_ns() - young.stat().st_ctime_ns < settle * 1e9, "the test ran too slowly"
    assert result.requests == []
    assert result.skip == ("No run launched: 1 request(s) routed; 1 file(s) still being written.")
    assert "drops" not in result.state.streams
    assert (inbox_dir() / "drops" / "load-1.request.json").exists()


def test_event_whose_run_failed_is_left_in_place_when_seen_again(
    instance: dg.DagsterInstance,
) -> None:
    # Regression: an event seen again (its cursor lost, or a tick not resumed) whose run had
    # failed, or was still queued, was moved to .processed as a duplicate; a queued run then
    # lost its input file and a failed event vanished from view.
    host = project_host()
    path = deliver("drops", "day.jsonl", b"this is not json\n")
    first = tick(host, instance)
    [request] = first.requests
    assert not execute(host, instance, request).success

    again = tick(host, instance, cursor=None)

    assert again.requests == []
    assert again.skip == "No run launched: 1 event(s) already have a run, left in place."
    assert path.exists()
    assert not (inbox_dir() / ".processed" / "drops").exists()


def test_request_input_inside_a_flow_stream_is_quarantined(instance: dg.DagsterInstance) -> None:
    # Regression: a request could name a file waiting in a flow's folder as its input, so
    # one file fed two runs (and the first to finish moved it away from the other).
    deliver("drops", "day.jsonl", GOOD_LINES)
    ask = {"id": "r1", "flow": "drops", "inputs": [{"path": "drops/day.jsonl"}]}
    deliver_request("ask.json", ask)

    result = tick(project_host(), instance)

    [(moved, reason)] = quarantined("requests")
    assert moved.name.endswith("-ask.json")
    assert reason["kind"] == "input_in_stream"
    assert "hidden folder" in str(reason["reason"])
    assert [r.run_key.split("@")[0] for r in result.requests] == ["file:drops/day.jsonl"]
