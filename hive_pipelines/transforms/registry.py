"""The registry of named transforms that flow YAML may refer to.

A transform is a plain function `fn(ctx, params, *frames) -> DataFrame` registered with a
pydantic model for its params and a one-line description. YAML names transforms only by
their registered name, so nothing a flow file says is ever evaluated as Python.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

P = TypeVar("P", bound=BaseModel)


class TransformParams(BaseModel):
    """Base for params models: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(TransformParams):
    """For transforms that take no params."""


@dataclass(frozen=True)
class TransformContext:
    """What a transform may know about where it runs: the flow, node and its allowed roots."""

    flow: str
    node: str
    run_id: str
    inputs: tuple[str, ...] = ()
    data_roots: dict[str, Path] = field(default_factory=dict)
    output_dir: Path = Path("outputs")


TransformFn = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class Transform(Generic[P]):
    """One registered transform and what validation needs to know about it."""

    name: str
    fn: TransformFn
    params_model: type[P]
    description: str
    min_inputs: int
    max_inputs: int | None

    def accepts(self, n_inputs: int) -> bool:
        upper = self.max_inputs if self.max_inputs is not None else n_inputs
        return self.min_inputs <= n_inputs <= upper

    @property
    def arity_text(self) -> str:
        if self.max_inputs is None:
            return f"at least {self.min_inputs} upstream node(s)"
        if self.min_inputs == self.max_inputs:
            return f"exactly {self.min_inputs} upstream node(s)"
        return f"{self.min_inputs} to {self.max_inputs} upstream nodes"

    def __call__(self, ctx: TransformContext, params: P, *frames: pd.DataFrame) -> pd.DataFrame:
        return self.fn(ctx, params, *frames)


class UnknownTransformError(KeyError):
    """A flow named a transform that is not registered."""


class TransformRegistry:
    """Transforms by name. One global instance, `REGISTRY`, serves the project."""

    def __init__(self) -> None:
        self._transforms: dict[str, Transform[Any]] = {}

    def register(
        self,
        name: str,
        *,
        params: type[BaseModel] = NoParams,
        description: str,
        inputs: int | tuple[int, int | None] = 1,
    ) -> Callable[[TransformFn], TransformFn]:
        """Register the decorated function under `name`; `inputs` is a count or (min, max)."""
        low, high = (inputs, inputs) if isinstance(inputs, int) else inputs

        def decorate(fn: TransformFn) -> TransformFn:
            existing = self._transforms.get(name)
            if existing is not None and existing.fn is not fn:
                raise ValueError(
                    f"Transform name {name!r} is already registered by "
                    f"{existing.fn.__module__}.{existing.fn.__qualname__}; pick another name."
                )
            self._transforms[name] = Transform(name, fn, params, description, low, high)
            return fn

        return decorate

    def get(self, name: str) -> Transform[Any]:
        try:
            return self._transforms[name]
        except KeyError:
            hint = self.suggest(name)
            tip = f" Did you mean {hint!r}?" if hint else ""
            raise UnknownTransformError(f"Unknown transform {name!r}.{tip}") from None

    def suggest(self, name: str) -> str | None:
        matches = difflib.get_close_matches(name, self._transforms, n=1, cutoff=0.5)
        return matches[0] if matches else None

    def __contains__(self, name: object) -> bool:
        return name in self._transforms

    def __iter__(self) -> Iterator[Transform[Any]]:
        return iter(sorted(self._transforms.values(), key=lambda t: t.name))


REGISTRY = TransformRegistry()
transform = REGISTRY.register


def load_transform_modules(modules: list[str]) -> TransformRegistry:
    """Import the built-in transforms and every user module listed in settings."""
    importlib.import_module("hive_pipelines.transforms.builtin")
    importlib.import_module("hive_pipelines.transforms.flights")
    importlib.import_module("hive_pipelines.transforms.github")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"Transform module {module!r} listed in HIVE_TRANSFORM_MODULES could not be "
                f"imported: {exc}. Check the module name and that it is installed."
            ) from exc
    return REGISTRY
