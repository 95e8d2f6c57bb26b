"""The host under a real `dagster dev`: the two real GH Archive hours dropped into the inbox
become two successful runs of github_activity whose tables match counts computed here from
the raw JSON, each event file moves to .processed/, and a malformed request is quarantined
with its reason."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import requests

from hive_pipelines_tests.conftest import PROJECT_DIR
from hive_pipelines_tests.e2e.processes import (
    EVENT_ID_TAG,
    EVENT_KEY_TAG,
    EVENT_PATH_TAG,
    HOURS,
    MAX_RUNTIME_TAG,
    SOURCE_TAG,
    DagsterProcess,
    drop,
    environment,
    failure_messages,
    file_event_key,
    free_port,
    make_home,
    require_gharchive,
    run_records,
    sha256,
    wait_for,
)

pytestmark = pytest.mark.slow

FLOW = "github_activity"
START_TIMEOUT_SECONDS = 180
RUNS_TIMEOUT_SECONDS = 240
SETTLE_TIMEOUT_SECONDS = 60
TOP_N = 10  # the flow's top_repositories node keeps 10 repositories
MALFORMED_REQUEST = b'{"id": "broken-1", "flow": "github_activity", "params": '


@dataclass
class Activity:
    """What one hour holds, counted from the raw JSON lines without pandas."""

    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    type_actors: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    type_repos: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    repos: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    repo_actors: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    actors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    actor_repos: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def count_activity(dump: bytes) -> Activity:
    activity = Activity()
    for line in gzip.decompress(dump).decode("utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        kind, actor, repo = event["type"], event["actor"]["login"], event["repo"]["name"]
        commits = int(event["payload"].get("size") or 0) if kind == "PushEvent" else 0
        activity.events += 1
        activity.by_type[kind] += 1
        activity.type_actors[kind].add(actor)
        activity.type_repos[kind].add(repo)
        activity.repos[repo].update(
            events=1,
            pushes=int(kind == "PushEvent"),
            commits=commits,
            stars=int(kind == "WatchEvent"),
            pull_requests=int(kind == "PullRequestEvent"),
            issues=int(kind == "IssuesEvent"),
        )
        activity.repo_actors[repo].add(actor)
        activity.actors[actor].update(events=1, pushes=int(kind == "PushEvent"), commits=commits)
        activity.actor_repos[actor].add(repo)
    return activity


def _table(path: Path, key: str) -> dict[str, dict[str, int]]:
    frame = pd.read_parquet(path)
    return {
        str(row[key]): {name: int(value) for name, value in row.items() if name != key}
        for row in frame.to_dict("records")
    }


def check_outputs(folder: Path, activity: Activity) -> None:
    """The run's four tables, compared in full with the independent counts."""
    by_type = _table(folder / "activity_by_type.parquet", "type")
    assert by_type == {
        kind: {
            "events": count,
            "actors": len(activity.type_actors[kind]),
            "repositories": len(activity.type_repos[kind]),
        }
        for kind, count in activity.by_type.items()
    }
    assert sum(row["events"] for row in by_type.values()) == activity.events

    by_repo = _table(folder / "activity_by_repo.parquet", "repo")
    columns = ["events", "pushes", "commits", "stars", "pull_requests", "issues"]
    expected_repos = {
        repo: {**{c: counts[c] for c in columns}, "actors": len(activity.repo_actors[repo])}
        for repo, counts in activity.repos.items()
    }
    assert by_repo == expected_repos

    by_actor = _table(folder / "activity_by_actor.parquet", "actor")
    assert by_actor == {
        actor: {
            "events": counts["events"],
            "repositories": len(activity.actor_repos[actor]),
            "pushes": counts["pushes"],
            "commits": counts["commits"],
        }
        for actor, counts in activity.actors.items()
    }

    # Top repositories by (events, commits), descending. Ties on both may come in any order,
    # so compare the ranking keys, each row's counts, and every repo that beats the last key.
    top = pd.read_parquet(folder / "top_repositories.parquet")
    ranking = sorted(((c["events"], c["commits"]) for c in activity.repos.values()), reverse=True)[
        :TOP_N
    ]
    assert list(zip(top["events"], top["commits"], strict=True)) == ranking
    for row in top.to_dict("records"):
        assert {c: int(row[c]) for c in columns} == {
            c: activity.repos[row["repo"]][c] for c in columns
        }
    certain = {
        repo for repo, c in activity.repos.items() if (c["events"], c["commits"]) > ranking[-1]
    }
    assert certain <= set(top["repo"])


def _serving(port: int, dev: DagsterProcess) -> bool:
    if not dev.alive():
        pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.tail()}")
    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
    except requests.RequestException:
        return False


def _successes(home: Path, dev: DagsterProcess) -> list[dg.RunRecord] | None:
    records = run_records(home, FLOW)
    for record in records:
        if record.dagster_run.status == dg.DagsterRunStatus.FAILURE:
            errors = "\n".join(failure_messages(home, record.dagster_run.run_id))
            pytest.fail(f"Run {record.dagster_run.run_id} failed:\n{errors}\n{dev.tail()}")
    done = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
    return done if len(done) >= len(HOURS) else None


def test_dropped_hours_become_one_run_each_and_a_bad_request_is_quarantined(
    tmp_path: Path,
) -> None:
    data = require_gharchive()
    dumps = {name: (data / name).read_bytes() for name in HOURS}
    expected = {name: count_activity(payload) for name, payload in dumps.items()}
    # The published figures of hour 0 (PROVENANCE.md), so the counting itself is checked.
    assert expected[HOURS[0]].events == 7_702
    assert expected[HOURS[0]].by_type["PushEvent"] == 4_280
    assert expected[HOURS[1]].events == 7_427

    home = make_home(tmp_path)
    flows = tmp_path / "flows"
    shutil.copytree(PROJECT_DIR / "flows", flows)
    var = tmp_path / "var"
    inbox = var / "inbox"
    env = environment(home, var, flows, host_interval_seconds="1", host_settle_seconds="1")

    port = free_port()
    dev = DagsterProcess.dev(port, env, tmp_path / "dagster_dev.log")
    try:
        wait_for(lambda: _serving(port, dev), START_TIMEOUT_SECONDS, "dagster dev serves", dev.tail)
        drop(inbox / "requests", "malformed.json", MALFORMED_REQUEST)
        for name, payload in dumps.items():
            drop(inbox / FLOW, name, payload)

        succeeded = wait_for(
            lambda: _successes(home, dev),
            RUNS_TIMEOUT_SECONDS,
            f"{len(HOURS)} runs of {FLOW} succeed",
            dev.tail,
        )
        quarantined = wait_for(
            lambda: sorted((inbox / ".quarantine" / "requests").glob("*malformed.json")),
            SETTLE_TIMEOUT_SECONDS,
            "the malformed request is quarantined",
            dev.tail,
        )
        processed = inbox / ".processed" / FLOW
        wait_for(
            lambda: all((processed / name).is_file() for name in HOURS),
            SETTLE_TIMEOUT_SECONDS,
            "both event files move to .processed/",
            dev.tail,
        )
        all_runs = run_records(home, FLOW)
    finally:
        dev.stop()

    # Exactly one run per dumped hour, every one launched by the host and tagged fully.
    assert len(all_runs) == len(HOURS) == len(succeeded)
    by_path = {r.dagster_run.tags[EVENT_PATH_TAG]: r.dagster_run for r in succeeded}
    assert sorted(by_path) == sorted(f"{FLOW}/{name}" for name in HOURS)
    for name, payload in dumps.items():
        run = by_path[f"{FLOW}/{name}"]
        tags = run.tags
        assert tags[SOURCE_TAG] == "host"
        assert tags[EVENT_KEY_TAG] == file_event_key(FLOW, name, payload)
        assert tags[EVENT_ID_TAG] == f"{name}@{sha256(payload)[:12]}"
        assert tags[MAX_RUNTIME_TAG] == "900"
        check_outputs(var / "outputs" / FLOW / run.run_id, expected[name])
        # The event file moved, unchanged, from the inbox to .processed/.
        assert not (inbox / FLOW / name).exists()
        assert sha256((processed / name).read_bytes()) == sha256(payload)

    # The malformed request sits in quarantine with its reason.
    (target,) = quarantined
    assert target.read_bytes() == MALFORMED_REQUEST
    reason: dict[str, Any] = json.loads(target.with_name(target.name + ".reason.json").read_text())
    assert reason["kind"] == "json"
    assert reason["stream"] == "requests"
    assert "not valid JSON" in reason["reason"]
    assert not (inbox / "requests" / "malformed.json").exists()
    assert not (inbox / FLOW / "broken-1.request.json").exists()
