"""How long one inbox sensor tick takes with many events waiting.

    python -m benchmarks.host_tick [--files 100000]

Creates the files in a temporary inbox (one flow folder), then times two consecutive real
evaluations of the inbox sensor on a real SQLite instance, each deciding the per-tick bound
of events (20 by default) out of all those waiting. Dagster stops a sensor evaluation after
60 s by default; a tick must stay far below that.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

FLOW = """
name: drops
host: {input_node: raw}
nodes:
  - id: raw
    transform: read_table
    params: {root: inbox, path: none.jsonl, format: jsonl}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "flows" / "drops.yaml").write_text(FLOW)
        (root / "home").mkdir()
        os.environ.update(
            HIVE_FLOWS_DIR=str(root / "flows"),
            HIVE_VAR_DIR=str(root / "var"),
            HIVE_HOST_SETTLE_SECONDS="0",
        )
        folder = root / "var" / "inbox" / "drops"
        folder.mkdir(parents=True)
        started = time.perf_counter()
        for number in range(args.files):
            (folder / f"event-{number:07d}.jsonl").write_bytes(b'{"n": %d}\n' % number)
        print(f"created {args.files:,} files in {time.perf_counter() - started:.1f} s")

        from hive_pipelines.definitions import defs

        definitions = defs()
        sensor = definitions.get_sensor_def("inbox_sensor")
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            cursor = None
            for label in ("first tick", "second tick"):
                started = time.perf_counter()
                context = dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=definitions
                )
                result = sensor(context)
                seconds = time.perf_counter() - started
                cursor = result.cursor
                print(f"{label}: {seconds:.2f} s, {len(result.run_requests)} run requests")


if __name__ == "__main__":
    main()
