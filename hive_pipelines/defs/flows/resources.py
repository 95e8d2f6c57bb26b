"""Where node outputs live, and the IO manager that hands them between ops as Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import PrivateAttr

from hive_pipelines.flowgraph.tables import TableSummary


class FlowStorage(dg.ConfigurableResource):
    """The folder of node outputs; by default `<instance storage>/hive`, one folder per run."""

    base_dir: Optional[str] = None  # noqa: UP045 - Dagster reads the annotation at runtime
    compression: str = "none"
    preview_rows: int = 5
    _root: Path | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.base_dir:
            self._root = Path(self.base_dir)
        elif context.instance is not None:
            self._root = Path(context.instance.storage_directory()) / "hive"

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError(
                "FlowStorage has no folder: set base_dir or run it with a Dagster instance."
            )
        return self._root

    def node_output_path(self, run_id: str, node_id: str) -> Path:
        return self.root / run_id / f"{node_id}.parquet"


class FlowTableIOManager(dg.ConfigurableIOManager):
    """Outputs are Parquet files the node's child process already wrote; inputs are their paths.

    The op never holds a table in memory: the child process of the downstream node reads the
    file itself. Re-executing part of a run reads the parent run's files.
    """

    storage: FlowStorage

    def handle_output(self, context: dg.OutputContext, obj: TableSummary) -> None:
        if not Path(obj.path).is_file():
            raise FileNotFoundError(
                f"Node {context.step_key!r} reported output {obj.path}, but no file is there."
            )

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None or upstream.step_key is None:
            raise RuntimeError(f"Input {context.name!r} has no upstream node output to read.")
        path = self.storage.node_output_path(upstream.run_id, upstream.step_key)
        if not path.is_file():
            raise FileNotFoundError(
                f"The output of node {upstream.step_key!r} from run {upstream.run_id} is "
                f"missing at {path}; re-run that node."
            )
        return path
