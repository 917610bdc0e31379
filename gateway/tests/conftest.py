import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pytest  # noqa: E402

from techbridge_shared.testing.kafka_broker import KafkaBroker  # noqa: E402


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    """A broker of the gateway's own: its event log consumes every platform topic from the
    start, so on the shared broker it would first wade through every other suite's events."""
    broker = KafkaBroker(tmp_path_factory.mktemp("gateway-kafka"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
