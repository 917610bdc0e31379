from techbridge_shared.migrations import run_env
from techbridge_vouchers.store.tables import metadata

run_env(metadata)
