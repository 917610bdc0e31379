from techbridge_shared.migrations import run_env
from techbridge_valuation.store.tables import metadata

run_env(metadata)
