"""tables.write_table: atomic Parquet files and summaries that agree with pandas."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hive_pipelines.flowgraph.tables import (
    PREVIEW_CELL_CHARS,
    PREVIEW_MAX_COLUMNS,
    read_table,
    write_table,
)


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, None, -2.25],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "t": pd.to_datetime(["2013-01-01 05:15", "2013-06-30 00:00", None]),
            "n": pd.array([7, None, 9], dtype="Int64"),
        }
    )


def test_write_table_leaves_only_the_final_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "table.parquet"

    summary = write_table(sample_frame(), path)

    assert os.listdir(path.parent) == ["table.parquet"]
    assert summary.path == str(path)
    assert summary.size_bytes == path.stat().st_size > 0


def test_failed_write_keeps_the_old_file_and_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    write_table(pd.DataFrame({"v": [1, 2]}), path)
    before = path.read_bytes()

    with pytest.raises(pa.ArrowException, match="Unsupported compression: no_such_codec"):
        write_table(pd.DataFrame({"v": [3, 4, 5]}), path, compression="no_such_codec")

    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["table.parquet"]
    assert read_table(path)["v"].tolist() == [1, 2]


def test_summary_matches_pandas(tmp_path: Path) -> None:
    frame = sample_frame()
    path = tmp_path / "table.parquet"

    summary = write_table(frame, path)

    assert summary.rows == len(frame) == pq.ParquetFile(path).metadata.num_rows
    assert list(summary.columns) == list(frame.columns)
    assert summary.columns == {
        "i": "int64",
        "f": "double",
        "s": "large_string",
        "b": "bool",
        "t": f"timestamp[{np.datetime_data(frame['t'].dtype)[0]}]",
        "n": "int64",
    }
    back = read_table(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back.dtypes.to_dict() == frame.dtypes.to_dict()


def test_an_index_that_carries_data_is_kept(tmp_path: Path) -> None:
    frame = pd.DataFrame({"carrier": ["AA", "UA"], "flights": [10, 20]}).set_index("carrier")
    path = tmp_path / "table.parquet"

    summary = write_table(frame, path)

    assert summary.columns == {"flights": "int64", "carrier": "large_string"}
    pd.testing.assert_frame_equal(read_table(path), frame)


def test_compression_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    write_table(pd.DataFrame({"v": range(1000)}), path, compression="zstd")

    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"
    assert read_table(path)["v"].tolist() == list(range(1000))


def test_preview_truncates_long_cells(tmp_path: Path) -> None:
    exact = "e" * PREVIEW_CELL_CHARS
    frame = pd.DataFrame(
        {
            "long": ["x" * 500, "short", None],
            "exact": [exact, exact, exact],
            "num": [1.5, float("nan"), 3.0],
        }
    )

    summary = write_table(frame, tmp_path / "table.parquet", preview_rows=3)

    first = summary.preview[0]
    assert len(first["long"]) == PREVIEW_CELL_CHARS
    assert first["long"] == "x" * (PREVIEW_CELL_CHARS - 1) + "…"
    assert first["exact"] == exact
    assert [row["long"] for row in summary.preview[1:]] == ["short", ""]
    assert [row["num"] for row in summary.preview] == ["1.5", "", "3.0"]
    # The file holds the full value; only the preview is cut.
    assert read_table(tmp_path / "table.parquet")["long"][0] == "x" * 500


def test_preview_is_bounded_in_rows_and_columns(tmp_path: Path) -> None:
    width = PREVIEW_MAX_COLUMNS + 10
    frame = pd.DataFrame({f"c{i}": range(20) for i in range(width)})

    summary = write_table(frame, tmp_path / "wide.parquet", preview_rows=4)

    assert len(summary.columns) == width
    assert len(summary.preview) == 4
    assert list(summary.preview[3]) == [f"c{i}" for i in range(PREVIEW_MAX_COLUMNS)]
    assert set(summary.preview[3].values()) == {"3"}

    none = write_table(frame, tmp_path / "none.parquet", preview_rows=0)
    assert none.preview == []
    assert none.rows == 20


def test_preview_of_list_cells(tmp_path: Path) -> None:
    """A list cell (say, a JSON array read from a .jsonl file) previews as text."""
    frame = pd.DataFrame({"id": [1, 2], "tags": [["a", "b"], []]})

    summary = write_table(frame, tmp_path / "table.parquet")

    assert summary.columns["tags"].startswith("list<")
    assert summary.preview == [{"id": "1", "tags": "['a', 'b']"}, {"id": "2", "tags": "[]"}]
    assert read_table(tmp_path / "table.parquet")["tags"].map(list).tolist() == [["a", "b"], []]
