"""Jobs built from the flow files in the flows folder.

An invalid flow file never hides the valid ones: each valid flow becomes its job, and each
invalid one becomes a job of the same name whose description holds the full validation
report and whose only op fails with it, so the problem is visible in the UI and in any run.
"""

from __future__ import annotations

import logging
import re

import dagster as dg

from hive_pipelines.defs.flows.compiler import build_flow_job
from hive_pipelines.flowgraph.problems import FlowValidationError
from hive_pipelines.flowgraph.validate import FlowReport, flow_files, validate_flows
from hive_pipelines.settings import HiveSettings, get_settings
from hive_pipelines.tags import FLOW_TAG, INVALID_TAG
from hive_pipelines.transforms.registry import load_transform_modules

logger = logging.getLogger(__name__)


_REPORTS: dict[tuple[str, tuple[tuple[str, int, int], ...]], list[FlowReport]] = {}
MAX_CACHED = 8


def flow_reports(settings: HiveSettings) -> list[FlowReport]:
    """Validate every flow file of the flows folder, once per state of its files.

    Dagster rebuilds a job several times in one process (`hive run` reconstructs it), so the
    reports are kept per settings and per file name, change time and size.
    """
    registry = load_transform_modules(settings.transform_modules)
    files = flow_files(settings.flows_dir, settings.max_flow_files)
    stamps = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    key = (settings.model_dump_json(), stamps)
    if key not in _REPORTS:
        if len(_REPORTS) >= MAX_CACHED:
            _REPORTS.clear()
        _REPORTS[key] = validate_flows(files, registry, settings)
    return _REPORTS[key]


def build_flow_definitions(
    settings: HiveSettings, reports: list[FlowReport] | None = None
) -> dg.Definitions:
    """One job per flow file; `reports` saves validating the files a second time."""
    if reports is None:
        reports = flow_reports(settings)
    jobs = [build_flow_job(r.plan, settings) for r in reports if r.plan is not None]
    taken = {job.name for job in jobs}
    for report in reports:
        if report.plan is not None:
            continue
        logger.warning(
            "Flow file %s is invalid:\n%s",
            report.path,
            "\n".join(f"  {p}" for p in report.problems),
        )
        name = _placeholder_name(report, taken)
        taken.add(name)
        jobs.append(invalid_flow_job(report, name))
    return dg.Definitions(jobs=jobs)


def _placeholder_name(report: FlowReport, taken: set[str]) -> str:
    """The flow's own name when free, else one made from the file name, never a clash."""
    if report.name and report.name not in taken:
        return report.name
    base = "invalid_" + re.sub(r"[^A-Za-z0-9_]", "_", report.path.name)
    name, count = base, 1
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def build_flow_job_by_name(name: str) -> dg.JobDefinition:
    """Rebuild one flow's job in another process (see `dagster.build_reconstructable_job`)."""
    settings = get_settings()
    for report in flow_reports(settings):
        if report.name == name and report.plan is not None:
            return build_flow_job(report.plan, settings)
        if report.name == name:
            raise FlowValidationError(report.problems)
    raise KeyError(f"No flow named {name!r} in {settings.flows_dir}.")


def invalid_flow_job(report: FlowReport, name: str) -> dg.JobDefinition:
    text = "\n".join(str(problem) for problem in report.problems)

    # Op names are unique per code location, so each placeholder has its own op, shown in
    # the job under the same node name.
    @dg.op(name=f"{name}__flow_is_invalid", description="Fails: the flow file did not validate.")
    def flow_is_invalid() -> None:
        raise dg.Failure(f"Flow file {report.path} is invalid:\n{text}", allow_retries=False)

    @dg.job(
        name=name,
        description=f"INVALID flow file {report.path}; fix it to run this flow.\n\n{text}",
        tags={FLOW_TAG: name, INVALID_TAG: "true"},
    )
    def placeholder() -> None:
        flow_is_invalid.alias("flow_is_invalid")()

    return placeholder
