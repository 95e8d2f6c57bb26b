"""The readings behind the health checks, taken from the instance, the inbox and the disk."""

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psutil

from hive_pipelines.defs.registry.assets import ASSIGNMENTS
from hive_pipelines.defs.registry.prune import PRUNE_JOB
from hive_pipelines.defs.runs import FAILED_STATUSES, FINISHED, op_config
from hive_pipelines.health.checks import NotApplicable
from hive_pipelines.host.inbox import QUARANTINE, backlog, streams
from hive_pipelines.host.tick import HostCursor
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings
from hive_pipelines.tags import FLOW_TAG

MAX_RUNS_READ = 10_000
MAX_FILES_WALKED = 200_000
INBOX_SENSOR = "inbox_sensor"
# `dagster-daemon run` by hand; `dagster dev` starts it as `python -m dagster._daemon run`.
DAEMON_COMMANDS = ("dagster-daemon", "dagster._daemon")


class InstanceSources:
    """`HealthSources` for a real instance and the folders of the settings."""

    def __init__(self, instance: dg.DagsterInstance, settings: HiveSettings) -> None:
        self.instance = instance
        self.settings = settings

    def flow_run_outcomes(self, since: float) -> dict[str, tuple[int, int]]:
        records = self.instance.get_run_records(
            dg.RunsFilter(statuses=FINISHED, updated_after=datetime.fromtimestamp(since, UTC)),
            limit=MAX_RUNS_READ,
        )
        counts: dict[str, tuple[int, int]] = {}
        for record in records:
            flow = record.dagster_run.tags.get(FLOW_TAG)
            if flow is None or (record.end_time or 0) < since:
                continue
            failed, total = counts.get(flow, (0, 0))
            counts[flow] = (failed + (record.dagster_run.status in FAILED_STATUSES), total + 1)
        return counts

    def oldest_queued_age(self, now: float) -> float:
        records = self.instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]),
            limit=1,
            order_by="create_timestamp",
            ascending=True,
        )
        return max(now - records[0].create_timestamp.timestamp(), 0.0) if records else 0.0

    def runs_in_progress(self) -> int:
        statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
        return self.instance.get_runs_count(dg.RunsFilter(statuses=statuses))

    def inbox_backlog(self, now: float) -> tuple[int, float]:
        inbox = self.settings.resolved_inbox_dir
        if not inbox.is_dir():
            raise NotApplicable(f"the inbox {inbox} does not exist yet")
        cursor = self._host_cursor()
        pending, oldest_ns = 0, None
        for stream in streams(inbox):
            found = backlog(inbox, stream, cursor.streams.get(stream), 1)
            pending += found.waiting
            if found.oldest_ctime_ns is not None:
                oldest_ns = min(oldest_ns or found.oldest_ctime_ns, found.oldest_ctime_ns)
        oldest = 0.0 if oldest_ns is None else max(now - oldest_ns / 1e9, 0.0)
        return pending, oldest

    def quarantined_since(self, since: float) -> int:
        folder = self.settings.resolved_inbox_dir / QUARANTINE
        if not folder.is_dir():
            return 0
        return sum(1 for path in folder.rglob("*.reason.json") if path.stat().st_mtime >= since)

    def open_circuits(self) -> list[str]:
        circuits = self._host_cursor().circuits
        return sorted(flow for flow, state in circuits.items() if state.state != "closed")

    def registry_stats(self) -> tuple[int, int, int]:
        store = RegistryStore(self.settings.resolved_registry_dir)
        days = store.days(ASSIGNMENTS)
        return store.size_bytes(), len(days), self.settings.registry_retention_days

    def last_prune_end(self) -> float | None:
        """When the last successful pruning that was not a dry run ended."""
        records = self.instance.get_run_records(
            dg.RunsFilter(job_name=PRUNE_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=20
        )
        for record in records:
            if not op_config(record, "prune_history", "dry_run", False):
                return record.end_time
        return None

    def storage_bytes(self) -> int:
        total = 0
        for count, (folder, _, files) in enumerate(os.walk(self.instance.storage_directory())):
            if count > MAX_FILES_WALKED:
                break
            for name in files:
                try:
                    total += os.stat(os.path.join(folder, name)).st_size
                except FileNotFoundError:
                    continue
        return total

    def disk_path(self) -> Path:
        return Path(self.instance.root_directory)

    def heartbeat_ages(self, now: float) -> dict[str, float]:
        beats = self.instance.get_daemon_heartbeats()
        return {name: max(now - beat.timestamp, 0.0) for name, beat in beats.items()}

    def daemon_rss(self) -> int:
        sizes = []
        for process in psutil.process_iter(["cmdline", "memory_info"]):
            cmdline = " ".join(process.info.get("cmdline") or [])
            daemon = any(name in cmdline for name in DAEMON_COMMANDS)
            if daemon and " run" in cmdline and process.info["memory_info"]:
                sizes.append(process.info["memory_info"].rss)
        if not sizes:
            raise NotApplicable("no dagster-daemon process runs on this host")
        return max(sizes)

    def _host_cursor(self) -> HostCursor:
        for state in self.instance.all_instigator_state():
            if state.name == INBOX_SENSOR and state.instigator_data is not None:
                return HostCursor.parse(getattr(state.instigator_data, "cursor", None))
        return HostCursor()
