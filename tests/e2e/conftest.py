"""The whole platform as real processes for the end-to-end journey (see e2e_platform.py)."""

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from e2e_platform import Partner, start_platform  # noqa: E402


@pytest.fixture(scope="session")
def platform(tmp_path_factory, kafka_bootstrap, pg_url_factory):
    started = start_platform(tmp_path_factory.mktemp("e2e-platform"), kafka_bootstrap, pg_url_factory)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def admin(platform):
    client = Partner(platform.url, platform.admin_id, platform.admin_secret)
    yield client
    client.close()
