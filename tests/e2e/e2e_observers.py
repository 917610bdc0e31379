"""What a government system sees: a webhook receiver, an SSE reader, and the raw topics."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

PLATFORM_TOPIC = re.compile(r"^techbridge\.(catalog|matching|valuation|vouchers)\.[a-z0-9-]+\.v\d+$")


def verify_signature(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """The receiver-side check the gateway README documents."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) < tolerance_s and hmac.compare_digest(mac, parts.get("v1", ""))


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    signed: bool
    event: dict


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers 204."""

    secret: str
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                signed = verify_signature(receiver.secret, headers.get("x-techbridge-signature", ""), body)
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {}
                with receiver.lock:
                    receiver.deliveries.append(Delivery(body, headers, signed, event))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/techbridge-events"

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def events_in_effect(self) -> list[dict]:
        """Each event once, in first-arrival order: what a receiver deduplicating by id applies."""
        seen, out = set(), []
        for d in self.snapshot():
            if d.event.get("id") not in seen:
                seen.add(d.event.get("id"))
                out.append(d.event)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SseReader:
    """Reads GET /api/v1/events/stream in a thread and keeps every event it sees."""

    def __init__(self, base_url: str, token: str, types: str):
        self.events: list[dict] = []
        self.ids: list[int] = []
        self.error: BaseException | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=None))
        self._args = (token, types)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        token, types = self._args
        try:
            with self._client.stream("GET", "/api/v1/events/stream", params={"types": types},
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                if r.status_code != 200:
                    raise AssertionError(f"stream answered {r.status_code}: {r.read()!r}")
                self.connected.set()
                fields: dict[str, str] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if "data" in fields and fields.get("event") != "end":
                            self.events.append(json.loads(fields["data"]))
                            self.ids.append(int(fields["id"]))
                        fields = {}
                    elif not line.startswith(":") and ":" in line:
                        k, v = line.split(":", 1)
                        fields[k] = v[1:] if v.startswith(" ") else v
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            if not self._stop.is_set():
                self.error = exc
            self.connected.set()

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        self.thread.join(10)


def read_platform_records(bootstrap: str, timeout_s: float = 60) -> tuple[list[str], list]:
    """Every record on every platform topic (not dead-letter topics), from the beginning."""
    import asyncio

    from techbridge_shared.testing.events import read_topics

    return asyncio.run(read_topics(bootstrap, PLATFORM_TOPIC, timeout_s))
