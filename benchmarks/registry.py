"""How long the registry takes to write a day, to read runs from an instance, and to prune.

    python -m benchmarks.registry [--runs 50] [--nodes 20] [--repeat 3]

1. Writing one day of 10,000 task assignments (500 runs x 20 nodes, one retry in ten):
   step events are built in memory as the registry receives them from the instance, then
   `task_assignments()`, `worker_summary()` and `RegistryStore.write` of both assets are
   timed (median of --repeat).
2. Reading those events from a real instance: --runs real runs of a Dagster job with
   --nodes ops, tagged as a flow, on a SQLite instance in a temporary folder; then the
   registry's own reading (`finished_flow_runs` and `step_events` per run) is timed and
   extrapolated linearly to 500 runs. The ops are trivial Dagster ops, not flow nodes in
   child processes: only the records they leave matter here, and those are the same kinds.
3. `prune()` on an empty SQLite instance, removing 10, 100 and 1,000 days while keeping 30,
   then removing 10 while keeping 1,000: it should grow with what is removed, not with what
   is kept. Day files are copies of one small Parquet file (pruning never reads them).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import pandas as pd

from hive_pipelines.defs.flows.compiler import FLOW_TAG, WORKER_KEY
from hive_pipelines.defs.registry.assets import (
    ASSIGNMENTS,
    EVENT_ID_TAG,
    WORKER_DAYS,
    finished_flow_runs,
    step_events,
)
from hive_pipelines.defs.registry.prune import prune
from hive_pipelines.registry.assignments import (
    RunInfo,
    StepEvent,
    day_of,
    task_assignments,
    worker_summary,
)
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import HiveSettings

DAY = "2026-03-15"
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC).timestamp()
PRUNE_CASES = [(10, 30), (100, 30), (1000, 30), (10, 1000)]  # (removed, kept)
WORKERS = 8


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def synthetic_day(runs: int, nodes: int) -> tuple[list[RunInfo], list[StepEvent]]:
    """Events as the instance would give them: START, OUTPUT (with the worker), SUCCESS,
    and for one node in ten a failed first attempt and a restart."""
    start = datetime.fromisoformat(f"{DAY}T00:00:00+00:00").timestamp()
    infos, events = [], []
    for r in range(runs):
        run_id = f"run-{r:05d}"
        at = start + r * 100.0
        for n in range(nodes):
            step, worker, pid = f"node_{n:02d}", f"host:{1000 + (r + n) % WORKERS}", 1000 + r
            events.append(StepEvent(run_id, step, "STEP_START", at, pid=pid))
            if (r + n) % 10 == 0:
                events.append(
                    StepEvent(
                        run_id,
                        step,
                        "STEP_UP_FOR_RETRY",
                        at + 0.5,
                        pid=pid,
                        error_class="Failure",
                        error_message="planned failure on attempt 1",
                    )
                )
                events.append(StepEvent(run_id, step, "STEP_RESTARTED", at + 1.0, pid=pid))
            events.append(StepEvent(run_id, step, "STEP_OUTPUT", at + 1.5, worker, pid))
            events.append(StepEvent(run_id, step, "STEP_SUCCESS", at + 2.0, pid=pid))
            at += 2.5
        infos.append(RunInfo(run_id, "bench", f"evt-{r}", at))
    return infos, events


def bench_write(repeat: int, root: Path) -> dict[str, float]:
    runs, events = synthetic_day(500, 20)
    store = RegistryStore(root)
    frame = task_assignments(runs, events)
    assert len(frame) == 10_000
    summary = worker_summary(frame)
    return {
        "events": float(len(events)),
        "build": median_seconds(lambda: task_assignments(runs, events), repeat),
        "summary": median_seconds(lambda: worker_summary(frame), repeat),
        "write": median_seconds(
            lambda: (store.write(ASSIGNMENTS, DAY, frame), store.write(WORKER_DAYS, DAY, summary)),
            repeat,
        ),
        "bytes": float(store.path(ASSIGNMENTS, DAY).stat().st_size),
    }


def wide_job(nodes: int) -> dg.JobDefinition:
    """`nodes` independent trivial ops that name their worker as flow nodes do."""

    def make(n: int) -> dg.OpDefinition:
        @dg.op(name=f"node_{n:02d}")
        def node() -> dg.Output[int]:
            return dg.Output(n, metadata={WORKER_KEY: dg.MetadataValue.text("bench:1")})

        return node

    ops = [make(n) for n in range(nodes)]

    @dg.job(name="bench_flow", tags={FLOW_TAG: "bench_flow"})
    def bench_flow() -> None:
        for op in ops:
            op()

    return bench_flow


def bench_read(runs: int, nodes: int, repeat: int, home: Path) -> dict[str, float]:
    job = wide_job(nodes)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        started = time.perf_counter()
        run_ids = [
            job.execute_in_process(instance=instance, tags={EVENT_ID_TAG: f"evt-{n}"}).run_id
            for n in range(runs)
        ]
        create = time.perf_counter() - started
        days = {
            day_of(record.end_time)
            for record in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
            if record.end_time is not None
        }

        def read() -> int:
            rows = 0
            for day in sorted(days):
                infos = finished_flow_runs(instance, day)
                events = [e for info in infos for e in step_events(instance, info.run_id)]
                rows += len(task_assignments(infos, events))
            return rows

        rows = read()
        assert rows == runs * nodes, rows
        seconds = median_seconds(read, repeat)
    return {"create": create, "read": seconds, "rows": float(rows)}


def fill_days(store: RegistryStore, days: list[str], template: Path) -> None:
    for asset in (ASSIGNMENTS, WORKER_DAYS):
        (store.root / asset).mkdir(parents=True, exist_ok=True)
        for day in days:
            shutil.copyfile(template, store.path(asset, day))


def bench_prune(repeat: int, work: Path) -> list[dict[str, float]]:
    template = work / "template.parquet"
    RegistryStore(work).write("template", DAY, pd.DataFrame({"day": [DAY], "tasks": [1]}))
    shutil.move(RegistryStore(work).path("template", DAY), template)
    today = date.fromisoformat(DAY)
    results = []
    for case, (removed, kept) in enumerate(PRUNE_CASES):
        days = [(today - timedelta(days=n)).isoformat() for n in range(removed + kept)][::-1]
        times = []
        for attempt in range(repeat):
            root = work / f"case{case}-{attempt}"
            home = work / f"home{case}-{attempt}"
            home.mkdir()
            store = RegistryStore(root / "registry")
            fill_days(store, days, template)
            settings = HiveSettings(
                var_dir=root, registry_dir=store.root, registry_retention_days=kept
            )
            with dg.instance_for_test(temp_dir=str(home)) as instance:
                started = time.perf_counter()
                report = prune(instance, settings, now=NOW)
                times.append(time.perf_counter() - started)
            assert len(report.partitions) == removed, (removed, len(report.partitions))
            assert store.days(ASSIGNMENTS) == days[removed:]
            shutil.rmtree(root)
        results.append({"removed": removed, "kept": kept, "seconds": statistics.median(times)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="real runs to read (default 50)")
    parser.add_argument("--nodes", type=int, default=20, help="ops per run (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure (median)")
    args = parser.parse_args()

    print(
        f"Python {platform.python_version()}, dagster {version('dagster')}, "
        f"pandas {pd.__version__}, pyarrow {version('pyarrow')}, {platform.machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as folder:
        work = Path(folder)
        written = bench_write(args.repeat, work / "write")
        home = work / "read_home"
        home.mkdir()
        read = bench_read(args.runs, args.nodes, args.repeat, home)
        pruned = bench_prune(args.repeat, work / "prune")

    total = written["build"] + written["summary"] + written["write"]
    print("\nOne day of 10,000 task assignments (500 runs x 20 nodes)")
    print(f"  {int(written['events']):,} step events in memory")
    print(f"  task_assignments()       {written['build']:8.3f} s")
    print(f"  worker_summary()         {written['summary']:8.3f} s")
    print(f"  write both assets (zstd) {written['write']:8.3f} s")
    print(f"  total                    {total:8.3f} s  ({written['bytes'] / 1024:,.0f} KiB)")

    per_run = read["read"] / args.runs
    print(f"\nReading step records from a real SQLite instance ({args.runs} runs x {args.nodes})")
    print(f"  creating the runs        {read['create']:8.1f} s (not part of the registry)")
    print(f"  finished_flow_runs + step_events + rows: {read['read']:.3f} s")
    print(f"  per run                  {per_run * 1000:8.1f} ms")
    print(f"  extrapolated to 500 runs {per_run * 500:8.1f} s (linear)")

    base = pruned[0]["seconds"]
    print("\nprune(): registry days removed vs kept (empty run history)")
    print(f"  {'removed':>8} {'kept':>6} {'seconds':>9} {'ms/day':>8} {'x first':>8}")
    for row in pruned:
        seconds, removed = row["seconds"], int(row["removed"])
        print(
            f"  {removed:>8,} {int(row['kept']):>6,} {seconds:>9.3f} "
            f"{seconds / removed * 1000:>8.2f} {seconds / base:>8.1f}"
        )


if __name__ == "__main__":
    main()
