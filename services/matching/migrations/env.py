from techbridge_shared.migrations import run_env
from techbridge_matching.store.tables import metadata

run_env(metadata)
