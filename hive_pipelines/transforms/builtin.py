"""Built-in transforms: reading, reshaping, combining and writing tables.

Every transform is `fn(ctx, params, *frames) -> DataFrame`. Params are declarative (column
names, operators from a fixed list, literal values); no string is ever evaluated as code.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from hive_pipelines.flowgraph.tables import write_table
from hive_pipelines.transforms.paths import confine, resolve_under
from hive_pipelines.transforms.registry import TransformContext, TransformParams, transform

Scalar = str | int | float | bool | None


class TransformInputError(ValueError):
    """The data does not fit the params: a missing column, a value of the wrong kind."""


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:40]))
        raise TransformInputError(f"{what}: no column(s) {missing}; the input has: {have}.")


# Reading and writing ---------------------------------------------------------------------


class ReadTableParams(TransformParams):
    root: str = Field(description="Name of an allowed data root (settings: data roots).")
    path: str = Field(min_length=1, description="File path inside the root.")
    format: Literal["auto", "csv", "parquet", "jsonl"] = "auto"
    columns: list[str] | None = None
    dtypes: dict[str, str] = Field(default_factory=dict)
    max_rows: int | None = Field(default=None, ge=1)


@transform(
    "read_table",
    params=ReadTableParams,
    inputs=0,
    description="Read a CSV, Parquet or JSON lines file (gzip and zip too) from a data root.",
)
def read_table(ctx: TransformContext, params: ReadTableParams) -> pd.DataFrame:
    path = resolve_under(ctx.data_roots, params.root, params.path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path} (root {params.root!r}, path {params.path!r}).")
    kind = params.format if params.format != "auto" else _format_of(path)
    if params.columns is not None and kind != "jsonl":
        # Check the header first: pandas and pyarrow fail on a missing column with vaguer errors.
        if kind == "parquet":
            header = pd.DataFrame(columns=pq.read_schema(path).names)
        else:
            header = pd.read_csv(path, nrows=0)
        require_columns(header, params.columns, f"read_table {params.path}")
    if kind == "parquet":
        frame = pd.read_parquet(path, columns=params.columns)
    elif kind == "jsonl":
        # dtype=False keeps string ids as strings and timestamps as text, as written.
        frame = pd.read_json(path, lines=True, dtype=False, nrows=params.max_rows)
    else:
        frame = pd.read_csv(
            path, usecols=params.columns, dtype=params.dtypes or None, nrows=params.max_rows
        )
    if params.columns is not None:
        require_columns(frame, params.columns, f"read_table {params.path}")
        frame = frame[params.columns]
    if params.max_rows is not None:
        frame = frame.head(params.max_rows)
    return frame.astype(params.dtypes) if params.dtypes and kind != "csv" else frame


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in {".gz", ".zip", ".bz2"}]
    last = suffixes[-1] if suffixes else ""
    if last in {".parquet", ".pq"}:
        return "parquet"
    if last in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if last in {".csv", ".txt", ".tsv"}:
        return "csv"
    raise TransformInputError(
        f"Cannot tell the format of {path.name}; set `format` to csv, parquet or jsonl."
    )


DIRECTORY_FIELDS = {"flow", "run_id"}


class WriteParams(TransformParams):
    directory: str = Field(
        default="",
        description="Folder under the output root (default: the flow's name); may hold "
        "{flow} and {run_id}, e.g. `{flow}/{run_id}` to keep every run's outputs.",
    )
    index: bool = False

    @model_validator(mode="after")
    def _known_placeholders(self) -> WriteParams:
        parsed = string.Formatter().parse(self.directory)
        fields = {name for _, name, _, _ in parsed if name is not None}
        unknown = fields - DIRECTORY_FIELDS
        if unknown:
            raise ValueError(f"directory may use only {{flow}} and {{run_id}}, not {unknown}")
        return self


@transform(
    "write_parquet",
    params=WriteParams,
    inputs=(1, None),
    description="Write each input as <directory>/<upstream id>.parquet under the output root.",
)
def write_parquet(
    ctx: TransformContext, params: WriteParams, *frames: pd.DataFrame
) -> pd.DataFrame:
    return _write_all(ctx, params, frames, "parquet")


@transform(
    "write_csv",
    params=WriteParams,
    inputs=(1, None),
    description="Write each input as <directory>/<upstream id>.csv under the output root.",
)
def write_csv(ctx: TransformContext, params: WriteParams, *frames: pd.DataFrame) -> pd.DataFrame:
    return _write_all(ctx, params, frames, "csv")


def _write_all(
    ctx: TransformContext, params: WriteParams, frames: tuple[pd.DataFrame, ...], kind: str
) -> pd.DataFrame:
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    directory = (params.directory or ctx.flow).format(flow=ctx.flow, run_id=ctx.run_id)
    folder = confine(ctx.output_dir, directory, label="the output root")
    folder.mkdir(parents=True, exist_ok=True)
    names = ctx.inputs or tuple(f"input_{i}" for i in range(len(frames)))
    written = []
    for name, frame in zip(names, frames, strict=True):
        target = folder / f"{name}.{kind}"
        if kind == "parquet":
            write_table(frame, target)
        else:
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            frame.to_csv(partial, index=params.index)
            os.replace(partial, target)
        written.append({"table": name, "path": str(target), "rows": len(frame)})
    return pd.DataFrame(written)


# Rows --------------------------------------------------------------------------------------

Operator = Literal[
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "not_in",
    "is_null",
    "not_null",
    "between",
    "contains",
    "startswith",
]


class Condition(TransformParams):
    column: str
    op: Operator
    value: Scalar | list[Scalar] = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in {"in", "not_in", "between"} and not isinstance(self.value, list):
            raise ValueError(f"operator {self.op!r} needs a list as value")
        if self.op == "between" and isinstance(self.value, list) and len(self.value) != 2:
            raise ValueError("operator 'between' needs a list of two values [low, high]")
        if self.op in {"contains", "startswith"} and not isinstance(self.value, str):
            raise ValueError(f"operator {self.op!r} needs a string value")
        return self


class FilterParams(TransformParams):
    conditions: list[Condition] = Field(min_length=1)
    combine: Literal["all", "any"] = "all"


@transform(
    "filter_rows",
    params=FilterParams,
    description="Keep the rows that meet all (or any) of the conditions.",
)
def filter_rows(ctx: TransformContext, params: FilterParams, frame: pd.DataFrame) -> pd.DataFrame:
    masks = [condition_mask(frame, c) for c in params.conditions]
    combined = (
        np.logical_and.reduce(masks) if params.combine == "all" else np.logical_or.reduce(masks)
    )
    return frame.loc[combined].reset_index(drop=True)


def condition_mask(frame: pd.DataFrame, cond: Condition) -> np.ndarray:
    """A boolean array for one condition; nulls never match a comparison."""
    require_columns(frame, [cond.column], "filter_rows")
    col = frame[cond.column]
    value: Any = cond.value
    if cond.op == "is_null":
        result = col.isna()
    elif cond.op == "not_null":
        result = col.notna()
    elif cond.op == "in":
        result = col.isin(value) & col.notna()
    elif cond.op == "not_in":
        result = ~col.isin(value) & col.notna()
    elif cond.op == "between":
        result = col.between(value[0], value[1])
    elif cond.op == "contains":
        result = col.astype("string").str.contains(value, regex=False)
    elif cond.op == "startswith":
        result = col.astype("string").str.startswith(value)
    else:
        # `ne` is True for NaN in pandas; nulls must not match any comparison.
        result = getattr(col, cond.op)(value) & col.notna()
    return np.asarray(pd.Series(result).fillna(False), dtype=bool)


class SortParams(TransformParams):
    by: list[str] = Field(min_length=1)
    descending: bool = False


@transform("sort_rows", params=SortParams, description="Sort rows by columns (nulls last).")
def sort_rows(ctx: TransformContext, params: SortParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, params.by, "sort_rows")
    ordered = frame.sort_values(params.by, ascending=not params.descending, kind="stable")
    return ordered.reset_index(drop=True)


class TopNParams(TransformParams):
    n: int = Field(ge=1, le=1_000_000)
    by: list[str] = Field(min_length=1)
    descending: bool = True
    group_by: list[str] = Field(default_factory=list)


@transform(
    "top_n",
    params=TopNParams,
    description="The first n rows by the given order, overall or within each group.",
)
def top_n(ctx: TransformContext, params: TopNParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, params.by + params.group_by, "top_n")
    ordered = frame.sort_values(params.by, ascending=not params.descending, kind="stable")
    if params.group_by:
        ordered = ordered.groupby(params.group_by, sort=True, dropna=False).head(params.n)
        ordered = ordered.sort_values(params.group_by, kind="stable")
    else:
        ordered = ordered.head(params.n)
    return ordered.reset_index(drop=True)


class DeduplicateParams(TransformParams):
    columns: list[str] | None = None
    keep: Literal["first", "last"] = "first"


@transform(
    "deduplicate",
    params=DeduplicateParams,
    description="Drop repeated rows, judged on all columns or the ones given.",
)
def deduplicate(
    ctx: TransformContext, params: DeduplicateParams, frame: pd.DataFrame
) -> pd.DataFrame:
    if params.columns:
        require_columns(frame, params.columns, "deduplicate")
    return frame.drop_duplicates(subset=params.columns, keep=params.keep).reset_index(drop=True)


class DropNullsParams(TransformParams):
    columns: list[str] | None = None
    how: Literal["any", "all"] = "any"


@transform(
    "drop_nulls",
    params=DropNullsParams,
    description="Drop rows with nulls in any (or all) of the given columns.",
)
def drop_nulls(ctx: TransformContext, params: DropNullsParams, frame: pd.DataFrame) -> pd.DataFrame:
    if params.columns:
        require_columns(frame, params.columns, "drop_nulls")
    return frame.dropna(subset=params.columns, how=params.how).reset_index(drop=True)


class FillNullsParams(TransformParams):
    values: dict[str, Scalar] = Field(min_length=1)


@transform(
    "fill_nulls", params=FillNullsParams, description="Replace nulls with a value per column."
)
def fill_nulls(ctx: TransformContext, params: FillNullsParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, list(params.values), "fill_nulls")
    return frame.fillna(params.values)


# Columns -----------------------------------------------------------------------------------


class SelectParams(TransformParams):
    columns: list[str] = Field(min_length=1)
    rename: dict[str, str] = Field(default_factory=dict)


@transform(
    "select_columns",
    params=SelectParams,
    description="Keep the given columns, in that order, optionally renaming them.",
)
def select_columns(
    ctx: TransformContext, params: SelectParams, frame: pd.DataFrame
) -> pd.DataFrame:
    require_columns(frame, params.columns, "select_columns")
    return frame[params.columns].rename(columns=params.rename)


class RenameParams(TransformParams):
    columns: dict[str, str] = Field(min_length=1)


@transform("rename_columns", params=RenameParams, description="Rename columns (old: new).")
def rename_columns(
    ctx: TransformContext, params: RenameParams, frame: pd.DataFrame
) -> pd.DataFrame:
    require_columns(frame, list(params.columns), "rename_columns")
    return frame.rename(columns=params.columns)


DeriveOp = Literal[
    "add",
    "sub",
    "mul",
    "div",
    "floordiv",
    "mod",
    "neg",
    "abs",
    "round",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "is_null",
    "not_null",
    "and",
    "or",
    "concat",
    "copy",
    "coalesce",
    "hour_of_hhmm",
    "minutes_of_hhmm",
]


class DeriveParams(TransformParams):
    column: str = Field(min_length=1, description="The column to create or replace.")
    op: DeriveOp
    inputs: list[str] = Field(min_length=1, description="Input column names, in order.")
    value: Scalar = Field(default=None, description="A literal applied after the inputs.")


@transform(
    "derive_column",
    params=DeriveParams,
    description="Compute a column from others with one operator from a fixed list.",
)
def derive_column(ctx: TransformContext, params: DeriveParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, params.inputs, "derive_column")
    out = frame.copy()
    out[params.column] = derive(frame, params)
    return out


def derive(frame: pd.DataFrame, params: DeriveParams) -> pd.Series:
    cols = [frame[name] for name in params.inputs]
    op, value = params.op, params.value
    if op in {"hour_of_hhmm", "minutes_of_hhmm"}:
        hhmm = cols[0]
        hours = (hhmm // 100) % 24
        return hours if op == "hour_of_hhmm" else hours * 60 + hhmm % 100
    if op == "copy":
        return cols[0].copy()
    if op == "coalesce":
        result = cols[0]
        for col in cols[1:]:
            result = result.fillna(col)
        return result if value is None else result.fillna(value)
    if op in {"is_null", "not_null"}:
        return cols[0].isna() if op == "is_null" else cols[0].notna()
    if op in {"neg", "abs"}:
        return -cols[0] if op == "neg" else cols[0].abs()
    if op == "round":
        return cols[0].round(int(value or 0))
    if op == "concat":
        text = [c.astype("string") for c in cols]
        joined = text[0]
        for part in text[1:]:
            joined = joined + ("" if value is None else str(value)) + part
        return joined
    operands: list[Any] = cols + ([] if value is None else [value])
    if len(operands) < 2:
        raise TransformInputError(f"derive_column op {op!r} needs two inputs, or one and a value.")
    function = {
        "add": "add",
        "sub": "sub",
        "mul": "mul",
        "div": "truediv",
        "floordiv": "floordiv",
        "mod": "mod",
        "eq": "eq",
        "ne": "ne",
        "lt": "lt",
        "le": "le",
        "gt": "gt",
        "ge": "ge",
        "and": "__and__",
        "or": "__or__",
    }[op]
    result = operands[0]
    for operand in operands[1:]:
        result = getattr(result, function)(operand)
    return result


CastType = Literal["int", "float", "string", "bool", "category", "datetime", "date"]
_DTYPES = {
    "int": "Int64",
    "float": "Float64",
    "string": "string",
    "bool": "boolean",
    "category": "category",
}


class CastParams(TransformParams):
    types: dict[str, CastType] = Field(min_length=1)
    errors: Literal["raise", "null"] = "raise"
    datetime_format: str | None = None
    utc: bool = False


@transform(
    "cast_columns",
    params=CastParams,
    description="Convert columns to int, float, string, bool, category, date or datetime.",
)
def cast_columns(ctx: TransformContext, params: CastParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, list(params.types), "cast_columns")
    out = frame.copy()
    errors = "coerce" if params.errors == "null" else "raise"
    for column, kind in params.types.items():
        try:
            if kind in {"datetime", "date"}:
                parsed = pd.to_datetime(
                    out[column], format=params.datetime_format, errors=errors, utc=params.utc
                )
                out[column] = parsed.dt.normalize() if kind == "date" else parsed
            elif errors == "coerce" and kind in {"int", "float", "bool"}:
                out[column] = _coerce(out[column], kind)
            else:
                out[column] = out[column].astype(_DTYPES[kind])
        except (ValueError, TypeError) as exc:
            raise TransformInputError(
                f"cast_columns: column {column!r} cannot become {kind}: {exc}. "
                "Set errors: null to turn such values into nulls."
            ) from exc
    return out


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _coerce(values: pd.Series, kind: str) -> pd.Series:
    """Cast, turning every value that does not fit into a null (errors: null)."""
    if kind == "bool":
        text = values.astype("string").str.strip().str.lower()
        flags = text.map(lambda v: True if v in _TRUE else False if v in _FALSE else pd.NA)
        return flags.astype("boolean")
    numbers = pd.to_numeric(values, errors="coerce")
    if kind == "int":
        numbers = numbers.where(numbers.isna() | (numbers % 1 == 0))
    return numbers.astype(_DTYPES[kind])


class HhmmParams(TransformParams):
    time_column: str = Field(description="Clock times written as HHMM integers (2400 = midnight).")
    output: str
    year: str = "year"
    month: str = "month"
    day: str = "day"
    not_before: str | None = Field(
        default=None, description="A datetime column; results earlier than it move a day on."
    )


@transform(
    "hhmm_to_datetime",
    params=HhmmParams,
    description="Combine date parts and an HHMM clock time into a datetime column.",
)
def hhmm_to_datetime(
    ctx: TransformContext, params: HhmmParams, frame: pd.DataFrame
) -> pd.DataFrame:
    needed = [params.time_column, params.year, params.month, params.day]
    require_columns(
        frame, needed + ([params.not_before] if params.not_before else []), "hhmm_to_datetime"
    )
    out = frame.copy()
    out[params.output] = hhmm_datetime(
        frame[params.year],
        frame[params.month],
        frame[params.day],
        frame[params.time_column],
        frame[params.not_before] if params.not_before else None,
    )
    return out


def hhmm_datetime(
    year: pd.Series,
    month: pd.Series,
    day: pd.Series,
    hhmm: pd.Series,
    not_before: pd.Series | None = None,
) -> pd.Series:
    """Datetimes from date parts and HHMM times; 2400 is midnight of the next day."""
    dates = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}))
    minutes = (hhmm // 100) * 60 + hhmm % 100
    result = dates + pd.to_timedelta(minutes, unit="min")
    if not_before is not None:
        result = result.where(~(result < not_before), result + pd.Timedelta(days=1))
    return result


class BinSpec(TransformParams):
    column: str
    edges: list[float] = Field(min_length=2)
    labels: list[str] | None = None
    output: str

    @model_validator(mode="after")
    def _labels_fit(self) -> BinSpec:
        if self.edges != sorted(self.edges):
            raise ValueError("edges must be increasing")
        if self.labels is not None and len(self.labels) != len(self.edges) - 1:
            raise ValueError(
                f"{len(self.edges)} edges make {len(self.edges) - 1} bins, "
                f"but {len(self.labels)} labels were given"
            )
        return self


class BinParams(TransformParams):
    bins: list[BinSpec] = Field(min_length=1)


@transform(
    "bin_columns",
    params=BinParams,
    description="Put numeric values into labelled bins (left-closed intervals).",
)
def bin_columns(ctx: TransformContext, params: BinParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, [b.column for b in params.bins], "bin_columns")
    out = frame.copy()
    for spec in params.bins:
        binned = pd.cut(out[spec.column], bins=spec.edges, labels=spec.labels, right=False)
        out[spec.output] = binned.astype("string")
    return out


# Combining ---------------------------------------------------------------------------------


class JoinParams(TransformParams):
    on: list[str] = Field(default_factory=list)
    left_on: list[str] = Field(default_factory=list)
    right_on: list[str] = Field(default_factory=list)
    how: Literal["inner", "left", "right", "outer"] = "inner"
    left_columns: list[str] | None = Field(
        default=None, description="Keep only these columns of the left input, and its keys."
    )
    right_columns: list[str] | None = Field(
        default=None, description="Keep only these columns of the right input (list its keys)."
    )
    right_rename: dict[str, str] = Field(default_factory=dict)
    suffixes: tuple[str, str] = ("", "_right")
    indicator: str | None = Field(default=None, description="A bool column: matched on the right.")
    validate_as: Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many"] | None = None

    @model_validator(mode="after")
    def _keys_given(self) -> JoinParams:
        if not self.on and not (self.left_on and self.right_on):
            raise ValueError("give `on`, or both `left_on` and `right_on`")
        if len(self.left_on) != len(self.right_on):
            raise ValueError("`left_on` and `right_on` must name as many columns")
        return self


@transform(
    "join",
    params=JoinParams,
    inputs=2,
    description="Join the first input (left) with the second (right) on key columns.",
)
def join(
    ctx: TransformContext, params: JoinParams, left: pd.DataFrame, right: pd.DataFrame
) -> pd.DataFrame:
    if params.left_columns is not None:
        keys = params.on or params.left_on
        wanted = list(dict.fromkeys([*keys, *params.left_columns]))
        require_columns(left, wanted, "join (left input)")
        left = left[wanted]
    if params.right_columns is not None:
        require_columns(right, params.right_columns, "join (right input)")
        right = right[params.right_columns]
    right = right.rename(columns=params.right_rename)
    left_keys = params.on or params.left_on
    right_keys = params.on or params.right_on
    require_columns(left, left_keys, "join (left input)")
    require_columns(right, right_keys, "join (right input)")
    marker = "_hive_matched"
    if params.indicator:
        right = right.assign(**{marker: True})
    merged = left.merge(
        right,
        how=params.how,
        left_on=left_keys,
        right_on=right_keys,
        suffixes=params.suffixes,
        validate=params.validate_as,
    )
    if params.indicator:
        merged[params.indicator] = merged.pop(marker).notna().astype(bool)
    return merged


class UnionParams(TransformParams):
    source_column: str | None = Field(default=None, description="Record each row's upstream id.")


@transform(
    "union",
    params=UnionParams,
    inputs=(2, None),
    description="Stack the inputs' rows; columns missing from one input become nulls.",
)
def union(ctx: TransformContext, params: UnionParams, *frames: pd.DataFrame) -> pd.DataFrame:
    if params.source_column:
        names = ctx.inputs or tuple(str(i) for i in range(len(frames)))
        frames = tuple(
            f.assign(**{params.source_column: n}) for f, n in zip(frames, names, strict=True)
        )
    return pd.concat(frames, ignore_index=True)


AggFunc = Literal[
    "count", "size", "sum", "mean", "median", "min", "max", "std", "nunique", "first", "last"
]


class Aggregation(TransformParams):
    column: str | None = None
    func: AggFunc

    @model_validator(mode="after")
    def _column_given(self) -> Aggregation:
        if self.func != "size" and self.column is None:
            raise ValueError(f"aggregation {self.func!r} needs a column")
        return self


class AggregateParams(TransformParams):
    group_by: list[str] = Field(default_factory=list)
    aggregations: dict[str, Aggregation] = Field(min_length=1)
    dropna: bool = Field(default=False, description="Drop groups whose key is null.")


@transform(
    "aggregate",
    params=AggregateParams,
    description="Group rows by key columns and compute named aggregations.",
)
def aggregate(ctx: TransformContext, params: AggregateParams, frame: pd.DataFrame) -> pd.DataFrame:
    used = [a.column for a in params.aggregations.values() if a.column is not None]
    require_columns(frame, params.group_by + used, "aggregate")
    if not params.group_by:
        row = {name: _aggregate_series(frame, spec) for name, spec in params.aggregations.items()}
        return pd.DataFrame([row])
    grouped = frame.groupby(params.group_by, sort=True, dropna=params.dropna, observed=True)
    columns = {}
    for name, spec in params.aggregations.items():
        columns[name] = (
            grouped.size() if spec.func == "size" else grouped[spec.column].agg(spec.func)
        )
    return pd.DataFrame(columns).reset_index()


def _aggregate_series(frame: pd.DataFrame, spec: Aggregation) -> Any:
    if spec.func == "size":
        return len(frame)
    return frame[spec.column].agg(spec.func)


class CorrelateParams(TransformParams):
    columns: list[str] = Field(min_length=1)
    target: str
    method: Literal["pearson", "spearman"] = "pearson"


@transform(
    "correlate",
    params=CorrelateParams,
    description="Correlation of each column with a target column, over rows with both.",
)
def correlate(ctx: TransformContext, params: CorrelateParams, frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, [*params.columns, params.target], "correlate")
    rows = []
    target = pd.to_numeric(frame[params.target], errors="coerce").astype("float64")
    for column in params.columns:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        both = values.notna() & target.notna()
        x, y = values[both], target[both]
        if params.method == "spearman":
            # Pearson on ranks: pandas' own spearman needs scipy, which is not a dependency.
            x, y = x.rank(), y.rank()
        r = x.corr(y) if both.sum() > 1 else np.nan
        rows.append(
            {
                "column": column,
                "target": params.target,
                "method": params.method,
                "correlation": float(r),
                "rows": int(both.sum()),
            }
        )
    return pd.DataFrame(rows)
