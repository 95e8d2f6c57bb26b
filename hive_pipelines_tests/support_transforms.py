"""Transforms that exist only for tests: they fail, hang or count their attempts.

Listed in HIVE_TRANSFORM_MODULES by the `hive_env` fixture, so step processes of the
multiprocess executor register them too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
from pydantic import Field

from hive_pipelines.transforms.registry import TransformContext, TransformParams, transform


class CounterParams(TransformParams):
    counter_file: str
    fail_times: int = Field(default=1, ge=0)


@transform(
    "fail_then_succeed",
    params=CounterParams,
    inputs=(0, 1),
    description="Fails the first `fail_times` attempts, counted in a file; then succeeds.",
)
def fail_then_succeed(
    ctx: TransformContext, params: CounterParams, *frames: pd.DataFrame
) -> pd.DataFrame:
    counter = Path(params.counter_file)
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt <= params.fail_times:
        raise RuntimeError(f"planned failure on attempt {attempt}")
    return pd.DataFrame({"attempt": [attempt], "pid": [os.getpid()]})


class HangParams(TransformParams):
    how: str = Field(pattern="^(loop|sleep|blocking_read)$")
    counter_file: str | None = None
    hang_times: int = Field(default=1_000_000, ge=0)


@transform(
    "hang",
    params=HangParams,
    inputs=(0, 1),
    description="Hangs (busy loop, sleep or blocking read) for the first `hang_times` tries.",
)
def hang(ctx: TransformContext, params: HangParams, *frames: pd.DataFrame) -> pd.DataFrame:
    attempt = 1
    if params.counter_file:
        counter = Path(params.counter_file)
        attempt = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(attempt))
    if attempt <= params.hang_times:
        if params.how == "loop":
            while True:
                pass
        elif params.how == "sleep":
            time.sleep(3600)
        else:
            read_end, _write_end = os.pipe()
            os.read(read_end, 1)  # blocks in C forever: nobody writes
    return pd.DataFrame({"attempt": [attempt]})


class RowsParams(TransformParams):
    rows: int = Field(default=3, ge=0)


@transform("make_rows", params=RowsParams, inputs=0, description="A small table 0..rows-1.")
def make_rows(ctx: TransformContext, params: RowsParams) -> pd.DataFrame:
    return pd.DataFrame({"n": range(params.rows), "node": ctx.node})


class DieParams(TransformParams):
    how: str = Field(pattern="^(exit|sigkill)$")
    code: int = Field(default=3, ge=0, le=255)


@transform(
    "die",
    params=DieParams,
    inputs=(0, 1),
    description="Ends its own process without a result: os._exit(code) or SIGKILL.",
)
def die(ctx: TransformContext, params: DieParams, *frames: pd.DataFrame) -> pd.DataFrame:
    if params.how == "exit":
        os._exit(params.code)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # the signal arrives first
    raise AssertionError("SIGKILL did not end the process")


class SpawnParams(TransformParams):
    pid_file: str


@transform(
    "spawn_and_hang",
    params=SpawnParams,
    inputs=(0, 1),
    description="Starts `sleep 1000` as a grandchild, writes its pid to a file, hangs.",
)
def spawn_and_hang(
    ctx: TransformContext, params: SpawnParams, *frames: pd.DataFrame
) -> pd.DataFrame:
    grandchild = subprocess.Popen(["sleep", "1000"])
    written = Path(params.pid_file + ".tmp")
    written.write_text(str(grandchild.pid))
    os.replace(written, params.pid_file)
    while True:
        time.sleep(1)
