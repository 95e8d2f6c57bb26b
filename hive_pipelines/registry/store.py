"""Registry partitions on disk: one Parquet file per asset and day, written atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from hive_pipelines.flowgraph.tables import read_table, write_table

DAY_FILE = re.compile(r"^day=(\d{4}-\d{2}-\d{2})\.parquet$")


class RegistryStore:
    """`<root>/<asset>/day=<YYYY-MM-DD>.parquet`; readers load one partition at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, asset: str, day: str) -> Path:
        return self.root / asset / f"day={day}.parquet"

    def write(self, asset: str, day: str, frame: pd.DataFrame) -> Path:
        target = self.path(asset, day)
        write_table(frame, target, compression="zstd", preview_rows=0)
        return target

    def read(self, asset: str, day: str) -> pd.DataFrame:
        path = self.path(asset, day)
        if not path.is_file():
            raise FileNotFoundError(f"Registry partition {asset} {day} does not exist at {path}.")
        return read_table(path)

    def days(self, asset: str) -> list[str]:
        """The days stored for an asset, oldest first."""
        folder = self.root / asset
        if not folder.is_dir():
            return []
        with os.scandir(folder) as found:
            days = [m.group(1) for e in found if (m := DAY_FILE.match(e.name))]
        return sorted(days)

    def delete(self, asset: str, day: str) -> bool:
        """Remove one partition's file; False when it was already gone."""
        try:
            self.path(asset, day).unlink()
        except FileNotFoundError:
            return False
        return True

    def size_bytes(self) -> int:
        if not self.root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.root.rglob("*.parquet") if p.is_file())
