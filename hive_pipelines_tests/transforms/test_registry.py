"""The transform registry: unique names, suggestions, arity and user modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from hive_pipelines.settings import get_settings
from hive_pipelines.transforms import builtin
from hive_pipelines.transforms.registry import (
    REGISTRY,
    NoParams,
    TransformContext,
    TransformRegistry,
    UnknownTransformError,
    load_transform_modules,
)


def first(ctx: TransformContext, params: NoParams, frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def second(ctx: TransformContext, params: NoParams, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(1)


def test_registering_a_second_function_under_an_existing_name_raises() -> None:
    registry = TransformRegistry()
    registry.register("passthrough", description="Return the input.")(first)

    with pytest.raises(ValueError) as raised:
        registry.register("passthrough", description="Another one.")(second)

    text = str(raised.value)
    assert "Transform name 'passthrough' is already registered" in text
    assert f"{__name__}.first" in text
    assert "pick another name" in text
    assert registry.get("passthrough").fn is first


def test_registering_the_same_function_again_is_allowed() -> None:
    # A module imported twice (e.g. reloaded) registers the same function again.
    registry = TransformRegistry()
    registry.register("passthrough", description="Return the input.")(first)
    registry.register("passthrough", description="Return the input, again.")(first)

    assert registry.get("passthrough").description == "Return the input, again."


def test_global_registry_refuses_a_new_function_named_like_a_builtin() -> None:
    load_transform_modules([])

    with pytest.raises(ValueError, match="'filter_rows' is already registered"):
        REGISTRY.register("filter_rows", description="An impostor.")(second)

    assert REGISTRY.get("filter_rows").fn is builtin.filter_rows


def test_unknown_name_error_suggests_the_closest_registered_name() -> None:
    registry = load_transform_modules([])

    with pytest.raises(UnknownTransformError) as raised:
        registry.get("fliter_rows")

    assert raised.value.args[0] == "Unknown transform 'fliter_rows'. Did you mean 'filter_rows'?"
    assert isinstance(raised.value, KeyError)


def test_unknown_name_with_nothing_close_has_no_suggestion() -> None:
    registry = load_transform_modules([])

    with pytest.raises(UnknownTransformError) as raised:
        registry.get("zzzzzzzzzz")

    assert raised.value.args[0] == "Unknown transform 'zzzzzzzzzz'."
    assert registry.suggest("zzzzzzzzzz") is None


def test_suggest_picks_the_closest_of_similar_names() -> None:
    registry = load_transform_modules([])

    assert registry.suggest("write_parquett") == "write_parquet"
    assert registry.suggest("writecsv") == "write_csv"
    assert registry.suggest("agregate") == "aggregate"


def test_arity_text_and_accepts_follow_the_declared_inputs() -> None:
    registry = load_transform_modules([])
    source, join, union = registry.get("read_table"), registry.get("join"), registry.get("union")

    assert source.arity_text == "exactly 0 upstream node(s)"
    assert (source.accepts(0), source.accepts(1)) == (True, False)
    assert join.arity_text == "exactly 2 upstream node(s)"
    assert (join.accepts(1), join.accepts(2), join.accepts(3)) == (False, True, False)
    assert union.arity_text == "at least 2 upstream node(s)"
    assert (union.accepts(1), union.accepts(2), union.accepts(50)) == (False, True, True)


def test_bounded_range_of_inputs_is_described_as_a_range() -> None:
    registry = TransformRegistry()
    registry.register("pair_or_triple", description="x", inputs=(2, 3))(first)
    transform = registry.get("pair_or_triple")

    assert transform.arity_text == "2 to 3 upstream nodes"
    assert [transform.accepts(n) for n in range(5)] == [False, False, True, True, False]


def test_registry_lists_transforms_sorted_by_name() -> None:
    registry = TransformRegistry()
    registry.register("zeta", description="z")(first)
    registry.register("alpha", description="a")(second)

    assert [t.name for t in registry] == ["alpha", "zeta"]
    assert "alpha" in registry
    assert "beta" not in registry


def test_builtin_transforms_are_registered() -> None:
    registry = load_transform_modules([])
    names = {t.name for t in registry}

    assert {
        "read_table",
        "filter_rows",
        "select_columns",
        "rename_columns",
        "derive_column",
        "cast_columns",
        "hhmm_to_datetime",
        "fill_nulls",
        "drop_nulls",
        "deduplicate",
        "join",
        "aggregate",
        "sort_rows",
        "top_n",
        "union",
        "bin_columns",
        "correlate",
        "write_parquet",
        "write_csv",
        "clean_flights",
        "clean_weather",
    } <= names


def test_module_listed_in_hive_transform_modules_registers_its_transforms(
    hive_env: Path,
) -> None:
    settings = get_settings()
    assert settings.transform_modules == ["hive_pipelines_tests.support_transforms"]

    registry = load_transform_modules(settings.transform_modules)

    assert "make_rows" in registry
    ctx = TransformContext(flow="f", node="numbers", run_id="r")
    params = registry.get("make_rows").params_model(rows=2)
    frame = registry.get("make_rows")(ctx, params)
    assert frame.to_dict("list") == {"n": [0, 1], "node": ["numbers", "numbers"]}


def test_missing_module_in_hive_transform_modules_raises_import_error_naming_it(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_TRANSFORM_MODULES", '["no_such_hive_transforms_module"]')
    get_settings.cache_clear()

    with pytest.raises(ImportError) as raised:
        load_transform_modules(get_settings().transform_modules)

    text = str(raised.value)
    assert "Transform module 'no_such_hive_transforms_module'" in text
    assert "HIVE_TRANSFORM_MODULES" in text
    assert "Check the module name" in text
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_module_whose_own_import_fails_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hive_broken_transforms.py").write_text(
        "import hive_package_that_is_not_installed\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ImportError) as raised:
        load_transform_modules(["hive_broken_transforms"])

    text = str(raised.value)
    assert "Transform module 'hive_broken_transforms'" in text
    assert "hive_package_that_is_not_installed" in text
    assert "hive_broken_transforms" not in sys.modules
