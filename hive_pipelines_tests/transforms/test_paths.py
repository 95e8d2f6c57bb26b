"""Path safety: reads and writes stay inside their named roots."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from hive_pipelines.transforms.builtin import ReadTableParams, read_table
from hive_pipelines.transforms.paths import PathNotAllowedError, confine, resolve_under
from hive_pipelines.transforms.registry import TransformContext


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "inside.csv").write_text("a\n1\n")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_text("password\nhunter2\n")
    return folder


def test_relative_path_inside_the_root_resolves_to_its_real_path(root: Path) -> None:
    assert confine(root, "sub/inside.csv") == (root / "sub" / "inside.csv").resolve()


def test_dot_dot_that_stays_inside_the_root_is_allowed(root: Path) -> None:
    assert confine(root, "sub/../sub/inside.csv") == (root / "sub" / "inside.csv").resolve()


def test_dot_dot_out_of_the_root_is_refused(root: Path, outside: Path) -> None:
    with pytest.raises(PathNotAllowedError) as raised:
        confine(root, "../outside/secret.csv", label="root 'data'")

    text = str(raised.value)
    assert "'../outside/secret.csv'" in text
    assert f"resolves to {(outside / 'secret.csv').resolve()}" in text
    assert "outside root 'data'" in text


def test_absolute_path_elsewhere_is_refused(root: Path, outside: Path) -> None:
    with pytest.raises(PathNotAllowedError, match="outside its root"):
        confine(root, str(outside / "secret.csv"))


def test_absolute_path_inside_the_root_is_allowed(root: Path) -> None:
    target = root / "sub" / "inside.csv"

    assert confine(root, str(target)) == target.resolve()


def test_sibling_folder_sharing_the_root_name_prefix_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data2").mkdir()

    with pytest.raises(PathNotAllowedError):
        confine(tmp_path / "data", "../data2/x.csv")


def test_symlink_pointing_outside_the_root_is_refused(root: Path, outside: Path) -> None:
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret_link.csv").symlink_to(outside / "secret.csv")

    with pytest.raises(PathNotAllowedError, match="symlinks out"):
        confine(root, "escape/secret.csv")
    with pytest.raises(PathNotAllowedError, match="symlinks out"):
        confine(root, "secret_link.csv")


def test_symlink_staying_inside_the_root_is_allowed(root: Path) -> None:
    (root / "alias.csv").symlink_to(root / "sub" / "inside.csv")

    assert confine(root, "alias.csv") == (root / "sub" / "inside.csv").resolve()


def test_root_that_is_itself_a_symlink_still_confines(tmp_path: Path, root: Path) -> None:
    linked_root = tmp_path / "linked_root"
    linked_root.symlink_to(root, target_is_directory=True)

    assert confine(linked_root, "sub/inside.csv") == (root / "sub" / "inside.csv").resolve()
    with pytest.raises(PathNotAllowedError):
        confine(linked_root, "../outside")


def test_nul_byte_in_a_path_is_refused(root: Path) -> None:
    with pytest.raises(PathNotAllowedError, match="NUL byte"):
        confine(root, "sub/inside.csv\x00.txt")


def test_unknown_root_name_is_refused_listing_the_known_roots(root: Path, outside: Path) -> None:
    roots = {"data": root, "archive": outside}

    with pytest.raises(PathNotAllowedError) as raised:
        resolve_under(roots, "nycflights", "flights.csv")

    assert str(raised.value) == (
        "Unknown data root 'nycflights'; the allowed roots are: archive, data "
        "(HIVE_DATA_ROOTS adds more)."
    )


def test_unknown_root_with_no_roots_at_all_says_none() -> None:
    with pytest.raises(PathNotAllowedError, match="the allowed roots are: none"):
        resolve_under({}, "data", "x.csv")


def test_resolve_under_a_known_root_confines_to_it(root: Path) -> None:
    assert (
        resolve_under({"data": root}, "data", "sub/inside.csv")
        == (root / "sub" / "inside.csv").resolve()
    )
    with pytest.raises(PathNotAllowedError, match="outside root 'data'"):
        resolve_under({"data": root}, "data", "../outside/secret.csv")


def test_read_table_refuses_a_symlink_out_of_its_root(root: Path, outside: Path) -> None:
    (root / "trap.csv").symlink_to(outside / "secret.csv")
    ctx = TransformContext(flow="f", node="read", run_id="r", data_roots={"data": root})

    with pytest.raises(PathNotAllowedError):
        read_table(ctx, ReadTableParams(root="data", path="trap.csv"))
    # The same file through an allowed root is read normally.
    allowed = TransformContext(flow="f", node="read", run_id="r", data_roots={"x": outside})
    frame = read_table(allowed, ReadTableParams(root="x", path="secret.csv"))
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"password": ["hunter2"]}))


def test_read_table_refuses_an_unknown_root(root: Path) -> None:
    ctx = TransformContext(flow="f", node="read", run_id="r", data_roots={"data": root})

    with pytest.raises(PathNotAllowedError, match=r"Unknown data root 'etc'.*: data "):
        read_table(ctx, ReadTableParams(root="etc", path="passwd"))


def test_read_table_refuses_an_absolute_path_elsewhere(root: Path) -> None:
    ctx = TransformContext(flow="f", node="read", run_id="r", data_roots={"data": root})
    elsewhere = os.path.abspath(os.sep + "etc" + os.sep + "hostname")

    with pytest.raises(PathNotAllowedError, match="outside root 'data'"):
        read_table(ctx, ReadTableParams(root="data", path=elsewhere, format="csv"))
