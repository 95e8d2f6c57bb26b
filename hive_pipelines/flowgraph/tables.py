"""Tables handed between nodes: Parquet files written atomically, with a summary of each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset  # loaded here on purpose: see below
import pyarrow.parquet as pq

# `pq.read_table` imports pyarrow.dataset (with acero and substrait) on first use. Importing it
# here, in the parent, means every forked node process starts with it loaded: about 25 ms
# saved per node (docs/benchmarks.md).

PREVIEW_CELL_CHARS = 80
PREVIEW_MAX_COLUMNS = 30


@dataclass(frozen=True)
class TableSummary:
    """What a node produced: where it is, how many rows, its columns and a few first rows."""

    path: str
    rows: int
    columns: dict[str, str]
    preview: list[dict[str, str]]
    size_bytes: int


def write_table(
    frame: pd.DataFrame, path: Path, compression: str = "none", preview_rows: int = 5
) -> TableSummary:
    """Write `frame` as Parquet at `path`, all or nothing, and summarise it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=_keeps_index(frame))
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        pq.write_table(table, partial, compression=compression)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    columns = {
        name: str(kind) for name, kind in zip(table.schema.names, table.schema.types, strict=True)
    }
    return TableSummary(
        path=str(path),
        rows=table.num_rows,
        columns=columns,
        preview=_preview(frame, preview_rows),
        size_bytes=path.stat().st_size,
    )


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a Parquet file written by `write_table` back into pandas."""
    return pq.read_table(path).to_pandas()


def _keeps_index(frame: pd.DataFrame) -> bool:
    # A default RangeIndex carries no data; any other index is kept as columns.
    return not isinstance(frame.index, pd.RangeIndex)


def _preview(frame: pd.DataFrame, rows: int) -> list[dict[str, str]]:
    head = frame.head(rows).iloc[:, :PREVIEW_MAX_COLUMNS]
    return [
        {str(column): _cell(value) for column, value in record.items()}
        for record in head.to_dict(orient="records")
    ]


def _cell(value: object) -> str:
    # A list or array cell is not a null, and pd.isna of it would be an array.
    text = "" if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else str(value)
    if len(text) > PREVIEW_CELL_CHARS:
        return text[: PREVIEW_CELL_CHARS - 1] + "…"
    return text
