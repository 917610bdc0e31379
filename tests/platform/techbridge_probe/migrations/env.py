from techbridge_probe.app import metadata
from techbridge_shared.migrations import run_env

run_env(metadata)
