import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from techbridge_shared.testing.fixtures import own_kafka_broker  # noqa: E402

# The gateway's event log consumes every platform topic from the start; on the shared broker
# of a full run it would first read every other suite's events.
kafka_bootstrap = own_kafka_broker("gateway")
