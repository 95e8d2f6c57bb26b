"""Helpers for end-to-end tests of the host: real Dagster processes on loopback, a temporary
instance, careful file drops into the inbox, and bounded waits.

Every process is started in its own session, so its process group holds the webserver,
the daemon, the code server and every run worker; `DagsterProcess.stop` signals that group
and then ends, by pid, any descendant that outlived it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import dagster as dg
import psutil
import pytest

from hive_pipelines_tests.conftest import PROJECT_DIR

SHARED_DATA = PROJECT_DIR.parent / "shared" / "data"
GHARCHIVE = SHARED_DATA / "gharchive"
HOURS = ("2015-01-01-0.json.gz", "2015-01-01-1.json.gz")
BIN = Path(sys.executable).parent

SOURCE_TAG = "hive/source"
EVENT_KEY_TAG = "hive/event_key"
EVENT_ID_TAG = "hive/event_id"
EVENT_PATH_TAG = "hive/event_path"
MAX_RUNTIME_TAG = "dagster/max_runtime"

FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}

T = TypeVar("T")


def require_gharchive() -> Path:
    """The folder of the real GH Archive hours, or skip the test saying where it looked."""
    missing = [name for name in HOURS if not (GHARCHIVE / name).is_file()]
    if missing:
        pytest.skip(
            f"The real GH Archive dumps {missing} are not in {GHARCHIVE} (the shared data "
            "folder beside the clone); this end-to-end test needs them."
        )
    return GHARCHIVE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_home(root: Path, replacements: Mapping[str, str] | None = None) -> Path:
    """A DAGSTER_HOME holding the project's dagster.yaml, with exact text replacements
    (for instance a faster run-monitoring poll); each replaced text must be there."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    config = (PROJECT_DIR / "dagster.yaml").read_text()
    for old, new in (replacements or {}).items():
        assert old in config, f"{old!r} is no longer in dagster.yaml"
        config = config.replace(old, new)
    (home / "dagster.yaml").write_text(config)
    return home


def environment(home: Path, var: Path, flows: Path, **hive: str) -> dict[str, str]:
    """The process environment: this one, with the instance, folders and HIVE_ settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HIVE_") and key != "DAGSTER_HOME"
    }
    env.update({"DAGSTER_HOME": str(home), "HIVE_VAR_DIR": str(var), "HIVE_FLOWS_DIR": str(flows)})
    env.update({f"HIVE_{key.upper()}": value for key, value in hive.items()})
    return env


class DagsterProcess:
    """A Dagster command run from the project root in a new session, logging to a file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._log = log.open("ab")
        self._stopped = False
        self.process = subprocess.Popen(
            args,
            cwd=PROJECT_DIR,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @classmethod
    def dev(cls, port: int, env: Mapping[str, str], log: Path) -> DagsterProcess:
        args = ["dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
        return cls([str(BIN / "dagster"), *args], env, log)

    @classmethod
    def daemon(cls, env: Mapping[str, str], log: Path) -> DagsterProcess:
        return cls([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Signal the process group; SIGKILL it if it outlives `timeout`; then end, by pid,
        any descendant that escaped the group. Returns the exit code of the main process.
        Only the first call signals anything: the group id is not reused after that."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        descendants = self.descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        _, alive = psutil.wait_procs(descendants, timeout=timeout if sig != signal.SIGKILL else 5)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=10)
        self._log.close()
        return self.process.returncode

    def tail(self, chars: int = 6000) -> str:
        self._log.flush()
        text = self.log.read_text(errors="replace")
        return text[-chars:]


def drop(folder: Path, name: str, data: bytes) -> Path:
    """Deliver a file the way a careful producer does: write `<name>.tmp`, then rename."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{name}.tmp"
    partial.write_bytes(data)
    target = folder / name
    os.replace(partial, target)
    return target


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_event_key(flow: str, name: str, data: bytes) -> str:
    """The host's key of a data file event, computed here from its definition."""
    return f"file:{flow}/{name}@{sha256(data)[:24]}"


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    report: Callable[[], str] = lambda: "",
    interval: float = 1.0,
) -> T:
    """Call `probe` until it returns something other than None or False, within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Not within {timeout:g} s: {what}\n{report()}")
        time.sleep(interval)


def run_records(home: Path, job_name: str | None = None) -> list[dg.RunRecord]:
    """Every run record of the instance in `home` (optionally of one job), oldest first."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name=job_name))
    return sorted(records, key=lambda r: r.create_timestamp)


def failure_messages(home: Path, run_id: str) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [
            f"{entry.step_key}: {entry.message}"
            for entry in instance.all_logs(run_id)
            if entry.is_dagster_event and entry.dagster_event.is_failure
        ]
