"""Start probe services as real processes against the session's Kafka and a store each."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx

from techbridge_shared.testing.kafka_broker import free_port
from techbridge_shared.testing.processes import ServiceProcess

PROBE_PATH = str(Path(__file__).resolve().parent)


def probe_process(
    tmp_path: Path, *, name: str, kafka: str, database_url: str, consume: bool,
    group: str | None = None, **settings: str,
) -> ServiceProcess:
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [PROBE_PATH, os.environ.get("PYTHONPATH")])),
        "PROBE_PORT": str(free_port()),
        "PROBE_DATABASE_URL": database_url,
        "PROBE_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "PROBE_CONSUME": "true" if consume else "false",
        "PROBE_DATA_DIR": str(tmp_path / name),
        "PROBE_LOG_LEVEL": "INFO",
    }
    if group:
        env["PROBE_CONSUMER_GROUP"] = group
    env.update({f"PROBE_{k.upper()}": v for k, v in settings.items()})
    return ServiceProcess("techbridge_probe", env, int(env["PROBE_PORT"]), tmp_path / f"{name}.log")


def unique_group() -> str:
    return f"probe.tally-{uuid.uuid4().hex[:8]}"


def record_notes(publisher: ServiceProcess, texts: list[str]) -> list[str]:
    ids = []
    with httpx.Client(base_url=publisher.url, timeout=30) as client:
        for text in texts:
            r = client.post("/notes", json={"text": text})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    return ids


def tally(consumer: ServiceProcess) -> dict:
    r = httpx.get(consumer.url + "/tally", timeout=10)
    r.raise_for_status()
    return r.json()


def wait_applied(consumer: ServiceProcess, note_ids: list[str], timeout: float = 60) -> dict:
    """Wait until every note was applied at least once; return the tally."""
    deadline = time.monotonic() + timeout
    while True:
        t = tally(consumer)
        missing = [n for n in note_ids if n not in t["per_note"]]
        if not missing:
            return t
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} of {len(note_ids)} notes never applied; e.g. {missing[:3]}")
        time.sleep(0.2)


def metric(process: ServiceProcess, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series matching the labels."""
    text = httpx.get(process.url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
