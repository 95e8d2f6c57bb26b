"""Validation problems: each names its file, node and line, and says what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow file."""

    path: Path
    kind: str
    message: str
    node: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = str(self.path) + (f":{self.line}" if self.line else "")
        node = f" node {self.node!r}:" if self.node else ""
        return f"{where}: [{self.kind}]{node} {self.message}"


class FlowValidationError(ValueError):
    """A flow file has one or more problems; `problems` lists all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{count} problem(s) found in flow files:\n{lines}")
