"""Tag and metadata keys the project writes on runs, ops and outputs; one place for all."""

FLOW_TAG = "hive/flow"
NODE_TAG = "hive/node"
TRANSFORM_TAG = "hive/transform"
MAX_RUNTIME_TAG = "dagster/max_runtime"
WORKER_KEY = "hive/worker"

SOURCE_TAG = "hive/source"
EVENT_KEY_TAG = "hive/event_key"
EVENT_ID_TAG = "hive/event_id"
EVENT_SOURCE_TAG = "hive/event_source"
EVENT_PATH_TAG = "hive/event_path"
INVALID_TAG = "hive/invalid"
