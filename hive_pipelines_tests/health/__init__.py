"""Helpers shared by the health tests: a real webhook, a clock, daemon-like processes,
sensor cursors saved as the daemon saves them, and flows that succeed or fail for real.

Nothing here stands in for Dagster, HTTP or the file system: the webhook is an HTTP server
on 127.0.0.1, the processes are real children, the cursors are written to the instance's
own schedule storage.
"""

from __future__ import annotations

import atexit
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import pytest
from dagster._core.definitions.sensor_definition import SensorType
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from hive_pipelines.settings import HiveSettings, get_settings

WEBHOOK_SECRET = "hook-token-7c1f9e"  # part of the URL path: must never reach a file

# The project's code location as the daemon and the webserver name it.
REPOSITORY = RemoteRepositoryOrigin(
    InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="hive_pipelines.definitions"),
        location_name="hive_pipelines",
    ),
    "__repository__",
)


def use_settings(monkeypatch: pytest.MonkeyPatch, **values: object) -> HiveSettings:
    """Set HIVE_<NAME> variables (nested with __) and return settings read afresh."""
    for name, value in values.items():
        monkeypatch.setenv(f"HIVE_{name.upper()}", str(value))
    get_settings.cache_clear()
    return get_settings()


def thresholds(
    monkeypatch: pytest.MonkeyPatch, check: str, warn: float, fail: float
) -> HiveSettings:
    """Force one check's threshold through HIVE_HEALTH__<CHECK>__WARN/FAIL."""
    return use_settings(
        monkeypatch, **{f"health__{check}__warn": warn, f"health__{check}__fail": fail}
    )


@dataclass
class Clock:
    """A clock the test sets; the health definitions read it instead of the time of day."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


# -- instances -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _instance_template() -> Path:
    """An empty local instance, created (and its SQLite schemas migrated) once per session."""
    folder = Path(tempfile.mkdtemp(prefix="hive-health-instance-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with dg.instance_for_test(temp_dir=str(folder)) as template:
        template.get_runs_count()
    return folder


@contextmanager
def fresh_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """A real, persistent local instance (SQLite) in `home`, like conftest's `instance`
    fixture, but copied from an empty one: creating the schemas takes a second or more."""
    shutil.copytree(_instance_template(), home)
    with dg.instance_for_test(temp_dir=str(home)) as real_instance:
        yield real_instance


# -- the webhook --------------------------------------------------------------------------


class Webhook:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it.

    `attempts` holds every body received; `delivered` only those answered with a 2xx at once
    (a request answered after `delay` may already have been given up by the client).
    """

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.paths: list[str] = []
        self.status = 200
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.hook = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/{WEBHOOK_SECRET}"

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, path: str, content_type: str, body: dict[str, Any]) -> tuple[int, float]:
        with self._lock:
            self.attempts.append(body)
            self.paths.append(path)
            self.content_types.append(content_type)
            return self.status, self.delay

    def _answered(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.delivered.append(body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    hook: Webhook

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer is expected here


class _Handler(BaseHTTPRequestHandler):
    server: _QuietServer

    def do_POST(self) -> None:
        hook = self.server.hook
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        status, delay = hook._record(self.path, self.headers.get("Content-Type", ""), body)
        if delay:
            time.sleep(delay)
        elif 200 <= status < 300:
            hook._answered(body)  # before answering: the client may look right after
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/{WEBHOOK_SECRET}"


# -- processes that look like the daemon ---------------------------------------------------

DAEMON_ARGS = ("dagster-daemon", "run")  # as `dagster-daemon run` is started by hand
DEV_DAEMON_ARGS = ("-m", "dagster._daemon", "run", "--log-level", "info")  # by `dagster dev`


@contextmanager
def daemon_like_process(
    megabytes: int = 0, args: tuple[str, ...] = DAEMON_ARGS
) -> Iterator[psutil.Process]:
    """A real child whose command line ends with `args`, holding `megabytes` of resident
    memory (written, so the pages are really resident); killed on exit."""
    code = (
        f"import sys, time; block = b'x' * ({megabytes} << 20); "
        "print('ready', flush=True); time.sleep(120)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield psutil.Process(child.pid)
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


# -- sensor cursors and runs, as the daemon and the webserver store them ------------------


def save_sensor_cursor(instance: dg.DagsterInstance, sensor: str, cursor: str) -> None:
    """Store a sensor's cursor in the instance's schedule storage, as the daemon does."""
    origin = RemoteInstigatorOrigin(REPOSITORY, sensor)
    state = InstigatorState(
        origin,
        InstigatorType.SENSOR,
        InstigatorStatus.RUNNING,
        SensorInstigatorData(cursor=cursor, sensor_type=SensorType.STANDARD),
    )
    if instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id()) is None:
        instance.add_instigator_state(state)
    else:
        instance.update_instigator_state(state)


def queue_run(instance: dg.DagsterInstance, job: dg.JobDefinition) -> dg.DagsterRun:
    """A run queued as the webserver queues one: with its job's remote origin."""
    return instance.create_run_for_job(
        job,
        status=dg.DagsterRunStatus.QUEUED,
        remote_job_origin=RemoteJobOrigin(REPOSITORY, job.name),
    )


# -- flows ---------------------------------------------------------------------------------

STEADY_FLOW = """
name: steady
defaults: {retry: {max_retries: 0}}
nodes:
  - id: rows
    transform: make_rows
"""

# `flaky` fails its first run and succeeds afterwards; `broken` always fails.
FLAKY_FLOW = """
name: flaky
defaults: {{retry: {{max_retries: 0}}}}
nodes:
  - id: wobbly
    transform: fail_then_succeed
    params: {{counter_file: "{counter}", fail_times: 1}}
"""

BROKEN_FLOW = """
name: broken
defaults: {{retry: {{max_retries: 0}}}}
nodes:
  - id: rows
    transform: make_rows
  - id: crash
    transform: fail_then_succeed
    upstream: [rows]
    params: {{counter_file: "{counter}", fail_times: 1000}}
"""


def write_flows(flows: Path) -> None:
    """The three test flows, with their attempt counters next to the flows folder."""
    counters = flows.parent / "counters"
    counters.mkdir(exist_ok=True)
    documents = {
        "steady": STEADY_FLOW,
        "flaky": FLAKY_FLOW.format(counter=counters / "flaky"),
        "broken": BROKEN_FLOW.format(counter=counters / "broken"),
    }
    for name, text in documents.items():
        (flows / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def flow_jobs(settings: HiveSettings) -> dict[str, dg.JobDefinition]:
    from hive_pipelines.defs.flows.definitions import build_flow_definitions

    definitions = build_flow_definitions(settings)
    return {job.name: job for job in definitions.jobs or [] if isinstance(job, dg.JobDefinition)}


def run_flow(job: dg.JobDefinition, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """A real run of a flow's job on the instance (tagged hive/flow by the job)."""
    return job.execute_in_process(instance=instance, raise_on_error=False)
