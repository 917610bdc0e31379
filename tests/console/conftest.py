import sys
from pathlib import Path

# The harness lives beside these tests, not in an installed package.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from techbridge_shared.testing.fixtures import own_kafka_broker  # noqa: E402

# The platform under test consumes whole topics from the start (matching's index, the
# gateway's event log); the shared broker of a full run carries every other suite's events.
kafka_bootstrap = own_kafka_broker("console")
