"""Start and stop a real single-node Apache Kafka broker (deploy/kafka/kafka.sh) for tests."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from .processes import signal_group

REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KafkaBroker:
    """One broker with its own data dir and ports; stop() and start() keep its data."""

    def __init__(self, data_dir: Path, port: int | None = None, controller_port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(KAFKA_SH), "start", str(self.data_dir), str(self.port), str(self.controller_port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.process.returncode}; see {self.log_path}")
            try:
                asyncio.run(_describe_cluster(self.bootstrap))
                return
            except Exception:
                time.sleep(0.5)
        raise TimeoutError(f"Kafka at {self.bootstrap} not ready after {timeout}s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        signal_group(self.process, sig, timeout)


async def _describe_cluster(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
