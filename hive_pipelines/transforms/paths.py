"""Confining file paths to allowed roots: no `..`, no absolute paths elsewhere, no symlinks out."""

from __future__ import annotations

import os
from pathlib import Path


class PathNotAllowedError(ValueError):
    """A path points outside the root it must stay in."""


def resolve_under(roots: dict[str, Path], root_name: str, relative: str) -> Path:
    """The real path of `relative` inside the named root, or PathNotAllowedError."""
    if root_name not in roots:
        known = ", ".join(sorted(roots)) or "none"
        raise PathNotAllowedError(
            f"Unknown data root {root_name!r}; the allowed roots are: {known} "
            "(HIVE_DATA_ROOTS adds more)."
        )
    return confine(roots[root_name], relative, label=f"root {root_name!r}")


def confine(root: Path, relative: str, label: str = "its root") -> Path:
    """Resolve `relative` against `root`, refusing anything that ends up outside it."""
    if "\x00" in relative:
        raise PathNotAllowedError(f"The path {relative!r} contains a NUL byte.")
    real_root = Path(os.path.realpath(root))
    candidate = Path(relative)
    if candidate.is_absolute():
        target = Path(os.path.realpath(candidate))
    else:
        target = Path(os.path.realpath(real_root / candidate))
    if target != real_root and real_root not in target.parents:
        raise PathNotAllowedError(
            f"The path {relative!r} resolves to {target}, outside {label} at {real_root}; "
            "paths must stay inside it (no '..', no absolute paths elsewhere, no symlinks out)."
        )
    return target
