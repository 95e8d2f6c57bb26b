"""The daemon restart test: `dagster-daemon run` is stopped in the middle of a stream of
inbox events, gracefully (SIGTERM) or by a crash (SIGKILL) of its whole process group, more
events arrive while it is down, and after the restart every event has exactly one run.

Runs in flight at the kill die with their workers. The run coordinator, run monitoring and
the event sensors of the restarted daemon end them (FAILURE or CANCELED); what matters is
that no event is lost and none is launched twice.

Observed (2 CPUs, Dagster 1.13.27): at the kill 3 runs existed, one of them STARTING. With
SIGTERM its worker died during the launch (exit -15) and the run coordinator failed it at
once; with SIGKILL it stayed STARTING until run monitoring's start timeout failed it. The
interrupted sensor tick was resumed after the restart ("Tick N was interrupted part-way
through, resuming"), Dagster's run keys skipped what it had already launched, the host
decided no event twice, and the 11 other runs succeeded: 12 runs for 12 events.
"""

from __future__ import annotations

import gzip
import json
import logging
import signal
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from hive_pipelines.host.tick import HostCursor
from hive_pipelines_tests.conftest import FIXTURES
from hive_pipelines_tests.e2e.processes import (
    EVENT_KEY_TAG,
    EVENT_PATH_TAG,
    FINISHED,
    GHARCHIVE,
    HOURS,
    MAX_RUNTIME_TAG,
    SOURCE_TAG,
    DagsterProcess,
    drop,
    environment,
    file_event_key,
    make_home,
    run_records,
    wait_for,
)

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

FLOW = "quick_events"
MAX_RUN_SECONDS = 30
POLL_SECONDS = 2
START_TIMEOUT_SECONDS = 60
LINES_PER_EVENT = 8
BEFORE_KILL, WHILE_DOWN, AFTER_RESTART = 6, 4, 2
EVENTS = BEFORE_KILL + WHILE_DOWN + AFTER_RESTART
KILL_TIMEOUT_SECONDS = 180
FINISH_TIMEOUT_SECONDS = 300

# One small, fast flow: read the event's JSON lines, count events per type, write the table.
FLOW_YAML = f"""
name: {FLOW}
description: Counts the events of one small JSON lines file per type.
defaults: {{retry: {{max_retries: 0}}, timeout_seconds: 60}}
limits: {{max_run_seconds: {MAX_RUN_SECONDS}}}
host: {{input_node: events_raw}}
nodes:
  - id: events_raw
    transform: read_table
    params: {{root: inbox, path: {FLOW}/none.jsonl, format: jsonl}}
  - id: by_type
    transform: aggregate
    upstream: [events_raw]
    params: {{group_by: [type], aggregations: {{events: {{func: size}}}}}}
  - id: report
    transform: write_parquet
    upstream: [by_type]
    params: {{directory: "{{flow}}/{{run_id}}"}}
"""


def event_lines(count: int) -> list[str]:
    """Real GH Archive events: from the shared dumps, else the fixture excerpts; without
    either, minimal events of the same shape."""
    for folder in (GHARCHIVE, FIXTURES / "gharchive"):
        lines: list[str] = []
        for name in HOURS:
            if (folder / name).is_file():
                with gzip.open(folder / name, "rt", encoding="utf-8") as handle:
                    lines += [line.rstrip("\n") for line in handle if line.strip()]
            if len(lines) >= count:
                return lines[:count]
    kinds = ["PushEvent", "WatchEvent", "CreateEvent", "IssuesEvent"]
    return [
        json.dumps(
            {
                "id": str(2_489_651_045 + i),
                "type": kinds[i % len(kinds)],
                "actor": {"id": i, "login": f"actor{i % 7}"},
                "repo": {"id": i % 5, "name": f"owner/repo{i % 5}"},
                "payload": {"size": i % 3} if i % len(kinds) == 0 else {},
                "public": True,
                "created_at": f"2015-01-01T00:{i % 60:02d}:00Z",
            }
        )
        for i in range(count)
    ]


def event_files() -> list[tuple[str, bytes]]:
    lines = event_lines(EVENTS * LINES_PER_EVENT)
    files = []
    for i in range(EVENTS):
        chunk = lines[i * LINES_PER_EVENT : (i + 1) * LINES_PER_EVENT]
        files.append((f"events-{i:02d}.jsonl", ("\n".join(chunk) + "\n").encode()))
    return files


def host_runs(home: Path) -> list[dg.RunRecord]:
    return [r for r in run_records(home, FLOW) if r.dagster_run.tags.get(SOURCE_TAG) == "host"]


def describe(records: list[dg.RunRecord]) -> str:
    return ", ".join(
        f"{r.dagster_run.tags.get(EVENT_PATH_TAG, '?').split('/')[-1]}={r.dagster_run.status.value}"
        for r in records
    )


def inbox_cursor(home: Path) -> HostCursor:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        states = [
            state
            for state in instance.all_instigator_state()
            if state.name == "inbox_sensor" and state.instigator_data is not None
        ]
    return HostCursor.parse(getattr(states[0].instigator_data, "cursor", None) if states else None)


def sensor_errors(text: str) -> list[str]:
    markers = ("Sensor daemon caught an error", "Error occurred during the execution")
    return [line for line in text.splitlines() if any(m in line for m in markers)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_every_event_runs_exactly_once_across_a_daemon_restart(
    tmp_path: Path, sig: signal.Signals
) -> None:
    files = event_files()
    keys = {file_event_key(FLOW, name, data): name for name, data in files}
    assert len(keys) == EVENTS, "the event files must differ in content"

    # The project's instance settings; run monitoring polls and gives up on a start sooner.
    home = make_home(
        tmp_path,
        {
            "poll_interval_seconds: 30": f"poll_interval_seconds: {POLL_SECONDS}",
            "start_timeout_seconds: 180": f"start_timeout_seconds: {START_TIMEOUT_SECONDS}",
        },
    )
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / f"{FLOW}.yaml").write_text(FLOW_YAML)
    var = tmp_path / "var"
    inbox = var / "inbox"
    env = environment(
        home,
        var,
        flows,
        host_interval_seconds="1",
        host_max_events_per_tick="2",
        host_settle_seconds="0",
    )

    started = time.monotonic()
    first = DagsterProcess.daemon(env, tmp_path / "daemon-1.log")
    second: DagsterProcess | None = None
    try:
        for name, data in files[:BEFORE_KILL]:
            drop(inbox / FLOW, name, data)
            time.sleep(0.2)

        def in_flight() -> list[dg.RunRecord] | None:
            if not first.alive():
                pytest.fail(f"dagster-daemon exited early:\n{first.tail()}")
            records = host_runs(home)
            running = [r for r in records if r.dagster_run.status != dg.DagsterRunStatus.QUEUED]
            return records if len(records) >= 3 and running else None

        at_kill = wait_for(
            in_flight, KILL_TIMEOUT_SECONDS, "three runs launched, one started", first.tail, 0.2
        )
        first.stop(sig)
        killed_at = time.monotonic()
        log.info(
            "%s after %.0f s; runs at the kill: %s",
            sig.name,
            killed_at - started,
            describe(at_kill),
        )
        after_kill = host_runs(home)
        log.info("runs right after the kill: %s", describe(after_kill))

        for name, data in files[BEFORE_KILL : BEFORE_KILL + WHILE_DOWN]:
            drop(inbox / FLOW, name, data)
        second = DagsterProcess.daemon(env, tmp_path / "daemon-2.log")
        for name, data in files[BEFORE_KILL + WHILE_DOWN :]:
            time.sleep(0.5)
            drop(inbox / FLOW, name, data)

        def all_finished() -> list[dg.RunRecord] | None:
            assert second is not None
            if not second.alive():
                pytest.fail(f"the restarted dagster-daemon exited:\n{second.tail()}")
            records = host_runs(home)
            seen = {r.dagster_run.tags.get(EVENT_KEY_TAG) for r in records}
            done = all(r.dagster_run.status in FINISHED for r in records)
            return records if done and set(keys) <= seen else None

        finished = wait_for(
            all_finished,
            FINISH_TIMEOUT_SECONDS,
            "every event has a finished run",
            lambda: describe(host_runs(home)) + "\n" + (second.tail() if second else ""),
        )
        finished_at = time.monotonic()
        # The inbox cursor has passed the last event: no later tick can decide any again.
        last = files[-1][0]
        wait_for(
            lambda: (
                inbox_cursor(home).streams.get(FLOW, None) is not None
                and inbox_cursor(home).streams[FLOW].name == last
            ),
            60,
            f"the inbox cursor reaches {last}",
            second.tail,
        )
        # The run failure sensor records FAILURE (not CANCELED) runs in .failed/.
        failed_records = [
            r for r in finished if r.dagster_run.status == dg.DagsterRunStatus.FAILURE
        ]
        wait_for(
            lambda: all(
                (
                    inbox / ".failed" / FLOW / f"{keys[r.dagster_run.tags[EVENT_KEY_TAG]]}.json"
                ).is_file()
                for r in failed_records
            ),
            60,
            "every failed run's event is recorded in .failed/",
            second.tail,
        )
        wait_for(
            lambda: all(
                (inbox / ".processed" / FLOW / keys[r.dagster_run.tags[EVENT_KEY_TAG]]).is_file()
                for r in finished
                if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            ),
            60,
            "every succeeded event moves to .processed/",
            second.tail,
        )
        records = host_runs(home)
        every_run = run_records(home)
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()
    log.info(
        "%s: restart to all finished %.0f s, whole test %.0f s; final runs: %s",
        sig.name,
        finished_at - killed_at,
        time.monotonic() - started,
        describe(records),
    )

    # Exactly one run per event: none missing, none twice, no other run of the flow.
    per_key = Counter(r.dagster_run.tags.get(EVENT_KEY_TAG) for r in records)
    assert per_key == Counter(set(keys)), per_key
    assert len(records) == EVENTS == len([r for r in every_run if r.dagster_run.job_name == FLOW])
    assert all(r.dagster_run.status in FINISHED for r in records)
    for record in records:
        tags = record.dagster_run.tags
        assert tags[MAX_RUNTIME_TAG] == f"{MAX_RUN_SECONDS}"
        assert tags[EVENT_PATH_TAG] == f"{FLOW}/{keys[tags[EVENT_KEY_TAG]]}"

    # Runs launched after the kill never met it: each of them succeeded, and every
    # successful run counted its own file's events.
    before = {r.dagster_run.run_id for r in after_kill}
    assert 3 <= len(before) < EVENTS
    by_name = {keys[r.dagster_run.tags[EVENT_KEY_TAG]]: r.dagster_run for r in records}
    for name, data in files:
        run = by_name[name]
        if run.run_id not in before:
            assert run.status == dg.DagsterRunStatus.SUCCESS, (name, run.status)
        if run.status == dg.DagsterRunStatus.SUCCESS:
            table = pd.read_parquet(var / "outputs" / FLOW / run.run_id / "by_type.parquet")
            kinds = Counter(json.loads(line)["type"] for line in data.decode().splitlines())
            assert dict(zip(table["type"], table["events"].astype(int), strict=True)) == kinds
            assert not (inbox / FLOW / name).exists()
        else:
            # A run that died with the daemon keeps its event in the inbox.
            assert (inbox / FLOW / name).is_file()
        if run.status == dg.DagsterRunStatus.FAILURE:
            record = json.loads((inbox / ".failed" / FLOW / f"{name}.json").read_text())
            assert record["run_id"] == run.run_id

    assert sensor_errors((tmp_path / "daemon-2.log").read_text(errors="replace")) == []
