"""Everything Dagster loads: each domain's definitions, gathered."""

import dagster as dg

from hive_pipelines.defs.flows.definitions import build_flow_definitions
from hive_pipelines.settings import get_settings


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    return dg.Definitions.merge(build_flow_definitions(settings))
