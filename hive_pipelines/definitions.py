"""Everything Dagster loads: each domain's definitions, gathered."""

import dagster as dg

from hive_pipelines.defs.flows.definitions import build_flow_definitions, flow_reports
from hive_pipelines.defs.health.definitions import build_health_definitions
from hive_pipelines.defs.host.definitions import build_host_definitions
from hive_pipelines.defs.registry.definitions import build_registry_definitions
from hive_pipelines.settings import get_settings
from hive_pipelines.transforms.registry import load_transform_modules


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    registry = load_transform_modules(settings.transform_modules)
    reports = flow_reports(settings)
    flows = build_flow_definitions(settings, reports)
    jobs = {job.name: job for job in flows.jobs or [] if isinstance(job, dg.JobDefinition)}
    host = build_host_definitions(reports, jobs, settings, registry)
    assignments = build_registry_definitions(settings)
    health = build_health_definitions(settings)
    return dg.Definitions.merge(flows, host, assignments, health)
