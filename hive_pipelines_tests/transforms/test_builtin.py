"""Built-in transforms called as plain functions on small frames, checked against values
worked out by hand."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hive_pipelines.flowgraph.tables import read_table as read_parquet_table
from hive_pipelines.transforms import builtin as b
from hive_pipelines.transforms.builtin import TransformInputError
from hive_pipelines.transforms.paths import PathNotAllowedError
from hive_pipelines.transforms.registry import TransformContext

NaN = float("nan")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def ctx(tmp_path: Path, data_root: Path) -> TransformContext:
    return TransformContext(
        flow="demo",
        node="node",
        run_id="run-1",
        data_roots={"data": data_root},
        output_dir=tmp_path / "outputs",
    )


def values(series: pd.Series) -> list:
    """Plain Python values, with every kind of null as None, for exact comparisons."""
    return [None if pd.isna(v) else v for v in series.tolist()]


# read_table ---------------------------------------------------------------------------------


def test_read_table_reads_a_csv(ctx: TransformContext, data_root: Path) -> None:
    (data_root / "trips.csv").write_text("id,city,km\n1,Oslo,2.5\n2,Bergen,\n")

    frame = b.read_table(ctx, b.ReadTableParams(root="data", path="trips.csv"))

    assert list(frame.columns) == ["id", "city", "km"]
    assert frame["id"].tolist() == [1, 2]
    assert frame["city"].tolist() == ["Oslo", "Bergen"]
    assert values(frame["km"]) == [2.5, None]


def test_read_table_csv_with_dtypes_keeps_leading_zeros(
    ctx: TransformContext, data_root: Path
) -> None:
    (data_root / "codes.csv").write_text("zip,n\n0150,1\n5003,2\n")

    frame = b.read_table(
        ctx, b.ReadTableParams(root="data", path="codes.csv", dtypes={"zip": "str"})
    )

    assert frame["zip"].tolist() == ["0150", "5003"]


def test_read_table_reads_a_gzipped_csv(ctx: TransformContext, data_root: Path) -> None:
    with gzip.open(data_root / "trips.csv.gz", "wt") as handle:
        handle.write("id,km\n1,10\n2,20\n3,30\n")

    frame = b.read_table(
        ctx, b.ReadTableParams(root="data", path="trips.csv.gz", columns=["km"], max_rows=2)
    )

    assert frame.to_dict("list") == {"km": [10, 20]}


def test_read_table_reads_parquet_with_columns_in_the_order_asked(
    ctx: TransformContext, data_root: Path
) -> None:
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]}).to_parquet(
        data_root / "table.parquet"
    )

    frame = b.read_table(
        ctx, b.ReadTableParams(root="data", path="table.parquet", columns=["c", "a"], max_rows=2)
    )

    assert frame.to_dict("list") == {"c": [0.5, 1.5], "a": [1, 2]}


def test_read_table_json_lines_keeps_string_ids_as_strings(
    ctx: TransformContext, data_root: Path
) -> None:
    (data_root / "events.jsonl").write_text(
        '{"id": "007", "n": 1, "at": "2013-01-01"}\n{"id": "010", "n": null, "at": "2013-01-02"}\n'
    )

    frame = b.read_table(ctx, b.ReadTableParams(root="data", path="events.jsonl"))

    assert frame["id"].tolist() == ["007", "010"]
    assert frame["at"].tolist() == ["2013-01-01", "2013-01-02"]
    assert values(frame["n"]) == [1, None]


def test_read_table_format_overrides_the_suffix(ctx: TransformContext, data_root: Path) -> None:
    (data_root / "export.dat").write_text('{"k": "a"}\n{"k": "b"}\n')

    with pytest.raises(TransformInputError, match=r"Cannot tell the format of export\.dat"):
        b.read_table(ctx, b.ReadTableParams(root="data", path="export.dat"))
    frame = b.read_table(ctx, b.ReadTableParams(root="data", path="export.dat", format="jsonl"))
    assert frame["k"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    "name",
    ["trips.csv", "trips.parquet", "trips.jsonl"],
    ids=["csv", "parquet", "jsonl"],
)
def test_read_table_missing_column_is_a_transform_input_error_naming_it(
    ctx: TransformContext, data_root: Path, name: str
) -> None:
    frame = pd.DataFrame({"id": [1], "km": [2.0]})
    path = data_root / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)

    with pytest.raises(TransformInputError) as raised:
        b.read_table(ctx, b.ReadTableParams(root="data", path=name, columns=["id", "miles"]))

    assert f"read_table {name}: no column(s) ['miles']; the input has: id, km." == str(raised.value)


def test_read_table_missing_file_says_where_it_looked(ctx: TransformContext) -> None:
    with pytest.raises(FileNotFoundError, match=r"root 'data', path 'absent\.csv'"):
        b.read_table(ctx, b.ReadTableParams(root="data", path="absent.csv"))


# filter_rows --------------------------------------------------------------------------------


@pytest.fixture
def fruit() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "x": [1.0, 5.0, NaN, 10.0, 5.0, -2.0],
            "s": ["apple", "banana", None, "cherry", "apricot", "date"],
        }
    )


@pytest.mark.parametrize(
    ("column", "op", "value", "kept"),
    [
        ("x", "eq", 5, [2, 5]),
        ("x", "ne", 5, [1, 4, 6]),
        ("x", "lt", 5, [1, 6]),
        ("x", "le", 5, [1, 2, 5, 6]),
        ("x", "gt", 5, [4]),
        ("x", "ge", 5, [2, 4, 5]),
        ("x", "in", [1, 10], [1, 4]),
        ("x", "not_in", [1, 10], [2, 5, 6]),
        ("x", "is_null", None, [3]),
        ("x", "not_null", None, [1, 2, 4, 5, 6]),
        ("x", "between", [0, 5], [1, 2, 5]),
        ("s", "contains", "an", [2]),
        ("s", "startswith", "ap", [1, 5]),
        ("s", "eq", "date", [6]),
        ("s", "ne", "apple", [2, 4, 5, 6]),
        ("s", "in", ["date", None], [6]),
        ("s", "not_in", ["apple"], [2, 4, 5, 6]),
        ("s", "lt", "b", [1, 5]),
    ],
    ids=lambda v: str(v),
)
def test_filter_rows_operator_keeps_matching_rows_and_never_nulls(
    ctx: TransformContext, fruit: pd.DataFrame, column: str, op: str, value, kept: list[int]
) -> None:
    params = b.FilterParams(conditions=[{"column": column, "op": op, "value": value}])

    out = b.filter_rows(ctx, params, fruit)

    assert out["id"].tolist() == kept
    assert list(out.index) == list(range(len(kept)))


def test_filter_rows_ne_on_a_nullable_integer_column_skips_nulls(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    params = b.FilterParams(conditions=[{"column": "n", "op": "ne", "value": 1}])

    assert b.filter_rows(ctx, params, frame)["n"].tolist() == [3]


def test_filter_rows_combines_all_conditions_by_default(
    ctx: TransformContext, fruit: pd.DataFrame
) -> None:
    params = b.FilterParams(
        conditions=[
            {"column": "x", "op": "ge", "value": 1},
            {"column": "s", "op": "startswith", "value": "a"},
        ]
    )

    assert b.filter_rows(ctx, params, fruit)["id"].tolist() == [1, 5]


def test_filter_rows_combine_any_keeps_rows_meeting_one_condition(
    ctx: TransformContext, fruit: pd.DataFrame
) -> None:
    params = b.FilterParams(
        combine="any",
        conditions=[
            {"column": "x", "op": "gt", "value": 5},
            {"column": "s", "op": "startswith", "value": "ap"},
        ],
    )

    assert b.filter_rows(ctx, params, fruit)["id"].tolist() == [1, 4, 5]


def test_filter_rows_missing_column_names_it(ctx: TransformContext, fruit: pd.DataFrame) -> None:
    params = b.FilterParams(conditions=[{"column": "price", "op": "gt", "value": 1}])

    with pytest.raises(TransformInputError, match=r"filter_rows: no column\(s\) \['price'\]"):
        b.filter_rows(ctx, params, fruit)


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"column": "x", "op": "between", "value": [1]}, "needs a list of two values"),
        ({"column": "x", "op": "in", "value": 3}, "operator 'in' needs a list"),
        ({"column": "s", "op": "contains", "value": 3}, "operator 'contains' needs a string"),
        ({"column": "x", "op": "like", "value": "a"}, "Input should be 'eq'"),
    ],
    ids=["between-one-value", "in-scalar", "contains-number", "unknown-op"],
)
def test_filter_condition_value_must_fit_its_operator(condition: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        b.FilterParams(conditions=[condition])


# Columns --------------------------------------------------------------------------------


def test_select_columns_keeps_order_and_renames(ctx: TransformContext, fruit: pd.DataFrame) -> None:
    out = b.select_columns(ctx, b.SelectParams(columns=["s", "id"], rename={"s": "name"}), fruit)

    assert list(out.columns) == ["name", "id"]
    assert out["id"].tolist() == [1, 2, 3, 4, 5, 6]


def test_select_columns_missing_column_names_it(ctx: TransformContext, fruit: pd.DataFrame) -> None:
    with pytest.raises(TransformInputError, match=r"select_columns: no column\(s\) \['sz'\]"):
        b.select_columns(ctx, b.SelectParams(columns=["s", "sz"]), fruit)


def test_rename_columns_renames_only_the_given(ctx: TransformContext, fruit: pd.DataFrame) -> None:
    out = b.rename_columns(ctx, b.RenameParams(columns={"x": "weight"}), fruit)

    assert list(out.columns) == ["id", "weight", "s"]
    with pytest.raises(TransformInputError, match=r"\['y'\]"):
        b.rename_columns(ctx, b.RenameParams(columns={"y": "z"}), fruit)


@pytest.fixture
def numbers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1.0, 2.0, NaN, -4.0],
            "b": [10, 20, 30, 40],
            "hhmm": [2400, 130, 5, 1759],
            "txt": ["x", "y", None, "w"],
            "p": [True, False, True, False],
            "q": [True, True, False, False],
        }
    )


@pytest.mark.parametrize(
    ("op", "inputs", "value", "expected"),
    [
        ("add", ["a", "b"], None, [11.0, 22.0, None, 36.0]),
        ("add", ["b"], 5, [15, 25, 35, 45]),
        ("sub", ["b", "a"], None, [9.0, 18.0, None, 44.0]),
        ("mul", ["a"], 3, [3.0, 6.0, None, -12.0]),
        ("div", ["b", "a"], None, [10.0, 10.0, None, -10.0]),
        ("floordiv", ["b"], 7, [1, 2, 4, 5]),
        ("mod", ["b"], 7, [3, 6, 2, 5]),
        ("neg", ["a"], None, [-1.0, -2.0, None, 4.0]),
        ("abs", ["a"], None, [1.0, 2.0, None, 4.0]),
        ("round", ["b"], -1, [10, 20, 30, 40]),
        ("gt", ["b"], 15, [False, True, True, True]),
        ("eq", ["b"], 20, [False, True, False, False]),
        ("is_null", ["a"], None, [False, False, True, False]),
        ("not_null", ["txt"], None, [True, True, False, True]),
        ("and", ["p", "q"], None, [True, False, False, False]),
        ("or", ["p", "q"], None, [True, True, True, False]),
        ("concat", ["txt", "b"], "-", ["x-10", "y-20", None, "w-40"]),
        ("copy", ["b"], None, [10, 20, 30, 40]),
        ("coalesce", ["a", "b"], None, [1.0, 2.0, 30.0, -4.0]),
        ("coalesce", ["a"], 0, [1.0, 2.0, 0.0, -4.0]),
        ("hour_of_hhmm", ["hhmm"], None, [0, 1, 0, 17]),
        ("minutes_of_hhmm", ["hhmm"], None, [0, 90, 5, 1079]),
    ],
    ids=lambda v: str(v),
)
def test_derive_column_op(
    ctx: TransformContext, numbers: pd.DataFrame, op: str, inputs: list, value, expected: list
) -> None:
    params = b.DeriveParams(column="out", op=op, inputs=inputs, value=value)

    out = b.derive_column(ctx, params, numbers)

    assert values(out["out"]) == expected
    assert list(out.columns) == [*numbers.columns, "out"]
    assert "out" not in numbers.columns


def test_derive_column_round_to_decimals(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"v": [1.234, 5.678]})
    params = b.DeriveParams(column="v", op="round", inputs=["v"], value=1)

    assert b.derive_column(ctx, params, frame)["v"].tolist() == [1.2, 5.7]


def test_derive_column_binary_op_with_one_input_and_no_value_is_refused(
    ctx: TransformContext, numbers: pd.DataFrame
) -> None:
    params = b.DeriveParams(column="out", op="add", inputs=["a"])

    with pytest.raises(TransformInputError, match="op 'add' needs two inputs, or one and a value"):
        b.derive_column(ctx, params, numbers)


def test_derive_column_missing_input_names_it(ctx: TransformContext, numbers: pd.DataFrame) -> None:
    params = b.DeriveParams(column="out", op="add", inputs=["a", "c"])

    with pytest.raises(TransformInputError, match=r"derive_column: no column\(s\) \['c'\]"):
        b.derive_column(ctx, params, numbers)


def test_cast_columns_to_each_type(ctx: TransformContext) -> None:
    frame = pd.DataFrame(
        {
            "i": ["1", "2", None],
            "f": ["1.5", "2", "3.25"],
            "s": [1, 2, 3],
            "flag": [True, False, None],
            "c": ["lo", "hi", "lo"],
            "at": ["2013-01-02 05:06:00", "2013-03-04 23:59:00", None],
            "day": ["2013-01-02 05:06:00", "2013-03-04 23:59:00", "2013-12-31 00:01:00"],
        }
    )
    params = b.CastParams(
        types={
            "i": "int",
            "f": "float",
            "s": "string",
            "flag": "bool",
            "c": "category",
            "at": "datetime",
            "day": "date",
        }
    )

    out = b.cast_columns(ctx, params, frame)

    assert str(out["i"].dtype) == "Int64"
    assert values(out["i"]) == [1, 2, None]
    assert str(out["f"].dtype) == "Float64"
    assert out["f"].tolist() == [1.5, 2.0, 3.25]
    assert out["s"].tolist() == ["1", "2", "3"]
    assert values(out["flag"]) == [True, False, None]
    assert list(out["c"].cat.categories) == ["hi", "lo"]
    assert values(out["at"]) == [
        pd.Timestamp("2013-01-02 05:06"),
        pd.Timestamp("2013-03-04 23:59"),
        None,
    ]
    assert out["day"].tolist() == [
        pd.Timestamp("2013-01-02"),
        pd.Timestamp("2013-03-04"),
        pd.Timestamp("2013-12-31"),
    ]


def test_cast_columns_bad_value_raises_naming_the_column(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"n": ["1", "two", "3"]})

    with pytest.raises(TransformInputError) as raised:
        b.cast_columns(ctx, b.CastParams(types={"n": "int"}), frame)

    text = str(raised.value)
    assert "cast_columns: column 'n' cannot become int" in text
    assert "Set errors: null" in text


def test_cast_columns_errors_null_turns_bad_values_into_nulls(ctx: TransformContext) -> None:
    frame = pd.DataFrame(
        {
            "n": ["1", "two", "3", None],
            "f": ["0.5", "x", "", "7"],
            "at": ["2013-01-02", "not a date", "2013-02-30", "2013-03-04"],
        }
    )
    params = b.CastParams(
        types={"n": "int", "f": "float", "at": "datetime"},
        errors="null",
        datetime_format="%Y-%m-%d",
    )

    out = b.cast_columns(ctx, params, frame)

    assert values(out["n"]) == [1, None, 3, None]
    assert values(out["f"]) == [0.5, None, None, 7.0]
    assert values(out["at"]) == [pd.Timestamp("2013-01-02"), None, None, pd.Timestamp("2013-03-04")]


def test_cast_columns_missing_column_names_it(ctx: TransformContext) -> None:
    with pytest.raises(TransformInputError, match=r"cast_columns: no column\(s\) \['n'\]"):
        b.cast_columns(ctx, b.CastParams(types={"n": "int"}), pd.DataFrame({"m": [1]}))


def test_hhmm_to_datetime_handles_2400_and_overnight_arrivals(ctx: TransformContext) -> None:
    frame = pd.DataFrame(
        {
            "year": [2013, 2013, 2013, 2013],
            "month": [1, 1, 12, 1],
            "day": [31, 31, 31, 1],
            "dep": [2400, 2355, 1200, NaN],
            "arr": [130, 105, 1415, NaN],
        }
    )

    out = b.hhmm_to_datetime(ctx, b.HhmmParams(time_column="dep", output="dep_at"), frame)
    out = b.hhmm_to_datetime(
        ctx, b.HhmmParams(time_column="arr", output="arr_at", not_before="dep_at"), out
    )

    # 2400 is midnight starting the next day; 01:30 after it is that same next day.
    assert values(out["dep_at"]) == [
        pd.Timestamp("2013-02-01 00:00"),
        pd.Timestamp("2013-01-31 23:55"),
        pd.Timestamp("2013-12-31 12:00"),
        None,
    ]
    # 01:05 after a 23:55 departure lands the next day; 14:15 after 12:00 the same day.
    assert values(out["arr_at"]) == [
        pd.Timestamp("2013-02-01 01:30"),
        pd.Timestamp("2013-02-01 01:05"),
        pd.Timestamp("2013-12-31 14:15"),
        None,
    ]


def test_hhmm_to_datetime_uses_named_date_columns(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"y": [2020], "m": [2], "d": [29], "t": [945]})
    params = b.HhmmParams(time_column="t", output="at", year="y", month="m", day="d")

    assert b.hhmm_to_datetime(ctx, params, frame)["at"].tolist() == [
        pd.Timestamp("2020-02-29 09:45")
    ]
    with pytest.raises(TransformInputError, match=r"\['year', 'month', 'day'\]"):
        b.hhmm_to_datetime(ctx, b.HhmmParams(time_column="t", output="at"), frame)


def test_fill_nulls_replaces_nulls_per_column(ctx: TransformContext, fruit: pd.DataFrame) -> None:
    out = b.fill_nulls(ctx, b.FillNullsParams(values={"x": 0, "s": "unknown"}), fruit)

    assert out["x"].tolist() == [1.0, 5.0, 0.0, 10.0, 5.0, -2.0]
    assert out["s"].tolist()[2] == "unknown"
    assert fruit["x"].isna().sum() == 1
    with pytest.raises(TransformInputError, match=r"\['z'\]"):
        b.fill_nulls(ctx, b.FillNullsParams(values={"z": 0}), fruit)


def test_drop_nulls_in_any_or_all_of_the_columns(ctx: TransformContext) -> None:
    frame = pd.DataFrame(
        {"id": [1, 2, 3, 4], "a": [1.0, NaN, NaN, 4.0], "b": ["x", "y", None, None]}
    )

    any_null = b.drop_nulls(ctx, b.DropNullsParams(columns=["a", "b"]), frame)
    all_null = b.drop_nulls(ctx, b.DropNullsParams(columns=["a", "b"], how="all"), frame)
    every_column = b.drop_nulls(ctx, b.DropNullsParams(), frame)

    assert any_null["id"].tolist() == [1]
    assert all_null["id"].tolist() == [1, 2, 4]
    assert every_column["id"].tolist() == [1]
    assert list(all_null.index) == [0, 1, 2]


def test_deduplicate_on_all_columns_or_the_given_ones(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"k": ["a", "a", "b", "a"], "v": [1, 1, 2, 3]})

    everything = b.deduplicate(ctx, b.DeduplicateParams(), frame)
    by_key_first = b.deduplicate(ctx, b.DeduplicateParams(columns=["k"]), frame)
    by_key_last = b.deduplicate(ctx, b.DeduplicateParams(columns=["k"], keep="last"), frame)

    assert everything.to_dict("list") == {"k": ["a", "b", "a"], "v": [1, 2, 3]}
    assert by_key_first.to_dict("list") == {"k": ["a", "b"], "v": [1, 2]}
    assert by_key_last.to_dict("list") == {"k": ["b", "a"], "v": [2, 3]}
    with pytest.raises(TransformInputError, match=r"deduplicate: no column\(s\) \['key'\]"):
        b.deduplicate(ctx, b.DeduplicateParams(columns=["key"]), frame)


def test_bin_columns_puts_values_in_left_closed_labelled_bins(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"precip": [0.0, 0.01, 0.05, 0.3, 12.0, NaN]})
    params = b.BinParams(
        bins=[
            {
                "column": "precip",
                "output": "band",
                "edges": [0, 0.01, 0.1, 0.3, 10],
                "labels": ["dry", "light", "moderate", "heavy"],
            },
            {"column": "precip", "output": "interval", "edges": [0, 1, 100]},
        ]
    )

    out = b.bin_columns(ctx, params, frame)

    # 0.01 opens "light", 0.3 opens "heavy"; 12 is past the last edge, so null.
    assert values(out["band"]) == ["dry", "light", "light", "heavy", None, None]
    first, second = "[0.0, 1.0)", "[1.0, 100.0)"
    assert values(out["interval"]) == [first, first, first, first, second, None]


def test_bin_spec_labels_must_match_the_bins() -> None:
    with pytest.raises(ValidationError, match="3 edges make 2 bins, but 3 labels were given"):
        b.BinSpec(column="v", output="o", edges=[0, 1, 2], labels=["a", "b", "c"])
    with pytest.raises(ValidationError, match="edges must be increasing"):
        b.BinSpec(column="v", output="o", edges=[0, 2, 1])


# Rows order -------------------------------------------------------------------------------


def test_sort_rows_ascending_and_descending_with_nulls_last(
    ctx: TransformContext, fruit: pd.DataFrame
) -> None:
    up = b.sort_rows(ctx, b.SortParams(by=["x", "id"]), fruit)
    down = b.sort_rows(ctx, b.SortParams(by=["x"], descending=True), fruit)

    assert up["id"].tolist() == [6, 1, 2, 5, 4, 3]
    assert down["id"].tolist() == [4, 2, 5, 1, 6, 3]
    assert list(up.index) == list(range(6))
    with pytest.raises(TransformInputError, match=r"sort_rows: no column\(s\) \['y'\]"):
        b.sort_rows(ctx, b.SortParams(by=["y"]), fruit)


@pytest.fixture
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "team": ["red", "blue", "red", "blue", "red", "green"],
            "player": ["ann", "bob", "cat", "dan", "eve", "fay"],
            "points": [7, 9, 12, 3, 7, 1],
        }
    )


def test_top_n_overall(ctx: TransformContext, scores: pd.DataFrame) -> None:
    out = b.top_n(ctx, b.TopNParams(n=3, by=["points"]), scores)

    # ann and eve tie on 7; the stable sort keeps ann (first in the input) ahead.
    assert out["player"].tolist() == ["cat", "bob", "ann"]


def test_top_n_smallest_first(ctx: TransformContext, scores: pd.DataFrame) -> None:
    out = b.top_n(ctx, b.TopNParams(n=2, by=["points"], descending=False), scores)

    assert out["player"].tolist() == ["fay", "dan"]


def test_top_n_per_group(ctx: TransformContext, scores: pd.DataFrame) -> None:
    out = b.top_n(ctx, b.TopNParams(n=2, by=["points"], group_by=["team"]), scores)

    assert out[["team", "player"]].values.tolist() == [
        ["blue", "bob"],
        ["blue", "dan"],
        ["green", "fay"],
        ["red", "cat"],
        ["red", "ann"],
    ]
    with pytest.raises(TransformInputError, match=r"top_n: no column\(s\) \['squad'\]"):
        b.top_n(ctx, b.TopNParams(n=1, by=["points"], group_by=["squad"]), scores)


# Combining --------------------------------------------------------------------------------


@pytest.fixture
def flights_small() -> pd.DataFrame:
    return pd.DataFrame({"carrier": ["UA", "AA", "ZZ", "UA"], "delay": [10, 20, 30, 40]})


@pytest.fixture
def airlines_small() -> pd.DataFrame:
    return pd.DataFrame(
        {"carrier": ["AA", "UA", "DL"], "name": ["American", "United", "Delta"], "hub": [1, 2, 3]}
    )


def test_join_inner_on_a_shared_key(
    ctx: TransformContext, flights_small: pd.DataFrame, airlines_small: pd.DataFrame
) -> None:
    out = b.join(ctx, b.JoinParams(on=["carrier"]), flights_small, airlines_small)

    assert out.to_dict("list") == {
        "carrier": ["UA", "AA", "UA"],
        "delay": [10, 20, 40],
        "name": ["United", "American", "United"],
        "hub": [2, 1, 2],
    }


def test_join_left_with_indicator_right_rename_and_right_columns(
    ctx: TransformContext, flights_small: pd.DataFrame, airlines_small: pd.DataFrame
) -> None:
    params = b.JoinParams(
        on=["carrier"],
        how="left",
        right_columns=["carrier", "name"],
        right_rename={"name": "airline"},
        indicator="known",
        validate_as="many_to_one",
    )

    out = b.join(ctx, params, flights_small, airlines_small)

    assert list(out.columns) == ["carrier", "delay", "airline", "known"]
    assert values(out["airline"]) == ["United", "American", None, "United"]
    assert out["known"].tolist() == [True, True, False, True]
    assert out["known"].dtype == bool


def test_join_with_different_key_names_and_outer(ctx: TransformContext) -> None:
    left = pd.DataFrame({"k": [1, 2], "v": ["a", "b"]})
    right = pd.DataFrame({"key": [2, 3], "w": ["B", "C"]})
    params = b.JoinParams(left_on=["k"], right_on=["key"], how="outer", indicator="matched")

    out = b.join(ctx, params, left, right)

    assert values(out["v"]) == ["a", "b", None]
    assert values(out["w"]) == [None, "B", "C"]
    assert out["matched"].tolist() == [False, True, True]


def test_join_right_rename_can_make_the_key(
    ctx: TransformContext, flights_small: pd.DataFrame
) -> None:
    airports = pd.DataFrame({"code": ["UA", "AA"], "name": ["United", "American"]})
    params = b.JoinParams(on=["carrier"], right_rename={"code": "carrier"})

    out = b.join(ctx, params, flights_small, airports)

    assert out["name"].tolist() == ["United", "American", "United"]


def test_join_missing_key_names_the_side_and_column(
    ctx: TransformContext, flights_small: pd.DataFrame, airlines_small: pd.DataFrame
) -> None:
    with pytest.raises(TransformInputError, match=r"join \(right input\).*\['origin'\]"):
        b.join(ctx, b.JoinParams(on=["origin"]), flights_small.assign(origin=1), airlines_small)
    with pytest.raises(TransformInputError, match=r"join \(left input\).*\['hub'\]"):
        b.join(ctx, b.JoinParams(on=["hub"]), flights_small, airlines_small)


def test_join_params_need_keys() -> None:
    with pytest.raises(ValidationError, match="give `on`, or both `left_on` and `right_on`"):
        b.JoinParams(left_on=["a"])


def test_aggregate_by_group(ctx: TransformContext) -> None:
    frame = pd.DataFrame(
        {"c": ["x", "y", "x", None, "x"], "v": [1.0, 2.0, 3.0, 4.0, NaN], "w": [1, 1, 2, 2, 2]}
    )
    params = b.AggregateParams(
        group_by=["c"],
        aggregations={
            "rows": {"func": "size"},
            "counted": {"column": "v", "func": "count"},
            "total": {"column": "v", "func": "sum"},
            "mean_v": {"column": "v", "func": "mean"},
            "largest": {"column": "v", "func": "max"},
            "kinds": {"column": "w", "func": "nunique"},
        },
    )

    out = b.aggregate(ctx, params, frame)

    # Groups are sorted, and the null key is kept as its own group by default.
    assert values(out["c"]) == ["x", "y", None]
    assert out["rows"].tolist() == [3, 1, 1]
    assert out["counted"].tolist() == [2, 1, 1]
    assert out["total"].tolist() == [4.0, 2.0, 4.0]
    assert out["mean_v"].tolist() == [2.0, 2.0, 4.0]
    assert out["largest"].tolist() == [3.0, 2.0, 4.0]
    assert out["kinds"].tolist() == [2, 1, 1]


def test_aggregate_dropna_drops_the_null_group(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"c": ["x", None, "x"], "v": [1, 2, 3]})
    params = b.AggregateParams(
        group_by=["c"], aggregations={"total": {"column": "v", "func": "sum"}}, dropna=True
    )

    assert b.aggregate(ctx, params, frame).to_dict("list") == {"c": ["x"], "total": [4]}


def test_aggregate_without_group_by_gives_one_row(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0, 6.0, NaN]})
    params = b.AggregateParams(
        aggregations={
            "rows": {"func": "size"},
            "total": {"column": "v", "func": "sum"},
            "median_v": {"column": "v", "func": "median"},
            "lowest": {"column": "v", "func": "min"},
        }
    )

    out = b.aggregate(ctx, params, frame)

    assert out.to_dict("records") == [{"rows": 4, "total": 9.0, "median_v": 2.0, "lowest": 1.0}]


def test_aggregate_missing_column_names_it(ctx: TransformContext) -> None:
    params = b.AggregateParams(
        group_by=["c"], aggregations={"total": {"column": "amount", "func": "sum"}}
    )

    with pytest.raises(TransformInputError, match=r"aggregate: no column\(s\) \['amount'\]"):
        b.aggregate(ctx, params, pd.DataFrame({"c": ["x"], "v": [1]}))


def test_aggregation_other_than_size_needs_a_column() -> None:
    with pytest.raises(ValidationError, match="aggregation 'sum' needs a column"):
        b.AggregateParams(aggregations={"total": {"func": "sum"}})


def test_union_stacks_rows_and_records_the_source(tmp_path: Path) -> None:
    ctx = TransformContext(flow="demo", node="all", run_id="r", inputs=("east", "west"))
    east = pd.DataFrame({"id": [1, 2], "km": [5, 6]})
    west = pd.DataFrame({"id": [3], "miles": [7]})

    out = b.union(ctx, b.UnionParams(source_column="region"), east, west)

    assert out["id"].tolist() == [1, 2, 3]
    assert values(out["km"]) == [5, 6, None]
    assert values(out["miles"]) == [None, None, 7]
    assert out["region"].tolist() == ["east", "east", "west"]
    assert list(out.index) == [0, 1, 2]


def test_union_without_source_column_or_input_names(ctx: TransformContext) -> None:
    a, c = pd.DataFrame({"n": [1]}), pd.DataFrame({"n": [2, 3]})

    plain = b.union(ctx, b.UnionParams(), a, c)
    numbered = b.union(ctx, b.UnionParams(source_column="from"), a, c)

    assert plain.to_dict("list") == {"n": [1, 2, 3]}
    assert numbered["from"].tolist() == ["0", "1", "1"]


def test_correlate_matches_numpy_corrcoef_over_rows_with_both(ctx: TransformContext) -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0, NaN, 6.0],
            "z": [5.0, 3.0, 2.0, 1.0, 0.0, -1.0],
            "label": ["a", "b", "c", "d", "e", "f"],
            "y": [2.0, 4.0, 5.0, 4.0, 1.0, NaN],
        }
    )

    out = b.correlate(ctx, b.CorrelateParams(columns=["x", "z", "label"], target="y"), frame)

    expected_x = np.corrcoef([1, 2, 3, 4], [2, 4, 5, 4])[0, 1]
    expected_z = np.corrcoef([5, 3, 2, 1, 0], [2, 4, 5, 4, 1])[0, 1]
    assert out["column"].tolist() == ["x", "z", "label"]
    assert out["target"].tolist() == ["y"] * 3
    assert out["rows"].tolist() == [4, 5, 0]
    assert out["correlation"].iloc[0] == pytest.approx(expected_x)
    assert out["correlation"].iloc[1] == pytest.approx(expected_z)
    # Text does not convert to numbers, so no rows have both and the result is null.
    assert math.isnan(out["correlation"].iloc[2])


def test_correlate_spearman_is_pearson_on_ranks(ctx: TransformContext) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, 4.0, 9.0, 100.0, 50.0]})

    out = b.correlate(ctx, b.CorrelateParams(columns=["x"], target="y", method="spearman"), frame)

    expected = np.corrcoef([1, 2, 3, 4, 5], [1, 2, 3, 5, 4])[0, 1]
    assert out["correlation"].iloc[0] == pytest.approx(expected)
    assert out["correlation"].iloc[0] == pytest.approx(0.9)
    with pytest.raises(TransformInputError, match=r"correlate: no column\(s\) \['w'\]"):
        b.correlate(ctx, b.CorrelateParams(columns=["w"], target="y"), frame)


# Writing ----------------------------------------------------------------------------------


@pytest.fixture
def writer_ctx(tmp_path: Path) -> TransformContext:
    return TransformContext(
        flow="demo",
        node="reports",
        run_id="run-1",
        inputs=("carriers", "routes"),
        output_dir=tmp_path / "outputs",
    )


def test_write_parquet_writes_each_input_under_output_root_flow_upstream_id(
    writer_ctx: TransformContext, tmp_path: Path
) -> None:
    carriers = pd.DataFrame({"carrier": ["AA", "UA"], "flights": [3, 4]})
    routes = pd.DataFrame({"route": ["JFK-LAX"], "delay": [12.5]})

    summary = b.write_parquet(writer_ctx, b.WriteParams(), carriers, routes)

    folder = tmp_path / "outputs" / "demo"
    assert summary.to_dict("list") == {
        "table": ["carriers", "routes"],
        "path": [str(folder / "carriers.parquet"), str(folder / "routes.parquet")],
        "rows": [2, 1],
    }
    pd.testing.assert_frame_equal(read_parquet_table(folder / "carriers.parquet"), carriers)
    pd.testing.assert_frame_equal(read_parquet_table(folder / "routes.parquet"), routes)
    assert sorted(p.name for p in folder.iterdir()) == ["carriers.parquet", "routes.parquet"]


def test_write_csv_into_a_directory_under_the_output_root(
    writer_ctx: TransformContext, tmp_path: Path
) -> None:
    carriers = pd.DataFrame({"carrier": ["AA", "UA"], "flights": [3, 4]})
    routes = pd.DataFrame({"route": ["JFK-LAX"], "delay": [12.5]})

    summary = b.write_csv(writer_ctx, b.WriteParams(directory="csv/latest"), carriers, routes)

    folder = tmp_path / "outputs" / "csv" / "latest"
    assert summary["path"].tolist() == [str(folder / "carriers.csv"), str(folder / "routes.csv")]
    assert (folder / "carriers.csv").read_text() == "carrier,flights\nAA,3\nUA,4\n"
    assert (folder / "routes.csv").read_text() == "route,delay\nJFK-LAX,12.5\n"
    assert sorted(p.name for p in folder.iterdir()) == ["carriers.csv", "routes.csv"]


def test_write_csv_with_index(tmp_path: Path) -> None:
    ctx = TransformContext(
        flow="demo", node="w", run_id="r", inputs=("t",), output_dir=tmp_path / "out"
    )
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"], name="k"))

    b.write_csv(ctx, b.WriteParams(index=True), frame)

    assert (tmp_path / "out" / "demo" / "t.csv").read_text() == "k,v\na,1\nb,2\n"


def test_write_directory_out_of_the_output_root_is_refused(
    writer_ctx: TransformContext, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"v": [1]})

    with pytest.raises(PathNotAllowedError, match="outside the output root"):
        b.write_csv(writer_ctx, b.WriteParams(directory="../escaped"), frame, frame)
    with pytest.raises(PathNotAllowedError, match="outside the output root"):
        b.write_parquet(writer_ctx, b.WriteParams(directory=str(tmp_path)), frame, frame)

    assert not (tmp_path / "escaped").exists()
    assert not list(tmp_path.glob("*.parquet"))


def test_cast_columns_errors_null_nulls_fractions_for_int_and_unknown_words_for_bool(
    ctx: TransformContext,
) -> None:
    # Regression: errors=null used to raise on "1.5" -> int and on "maybe" -> bool.
    frame = pd.DataFrame({"n": ["1", "1.5", "x", "2.0"], "flag": ["yes", "No", "maybe", "0"]})
    params = b.CastParams(types={"n": "int", "flag": "bool"}, errors="null")

    out = b.cast_columns(ctx, params, frame)

    assert out["n"].tolist()[0] == 1 and out["n"].tolist()[3] == 2
    assert out["n"].isna().tolist() == [False, True, True, False]
    assert out["flag"].isna().tolist() == [False, False, True, False]
    assert out["flag"].dropna().tolist() == [True, False, False]


def test_join_left_columns_keeps_those_and_the_keys(ctx: TransformContext) -> None:
    left = pd.DataFrame({"k": [1, 2], "a": [10, 20], "b": ["x", "y"]})
    right = pd.DataFrame({"k": [1, 2], "w": [0.5, 0.7]})
    params = b.JoinParams(on=["k"], how="left", left_columns=["a"])

    out = b.join(ctx, params, left, right)

    assert list(out.columns) == ["k", "a", "w"]
    assert out.to_dict(orient="list") == {"k": [1, 2], "a": [10, 20], "w": [0.5, 0.7]}
