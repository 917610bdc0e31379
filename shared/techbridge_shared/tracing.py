"""W3C Trace Context carried through HTTP and Kafka, so one trace follows a request from the
gateway through a service, into its events (`traceparent` CloudEvents extension) and into the
handlers that consume them. Logs carry the trace id.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)


def is_valid(traceparent: str | None) -> bool:
    if not traceparent:
        return False
    m = _TRACEPARENT_RE.match(traceparent.strip().lower())
    return bool(m) and m.group(1) != "ff" and m.group(2) != "0" * 32 and m.group(3) != "0" * 16


def child_traceparent(incoming: str | None) -> str:
    """A span under `incoming` (same trace id, new span id), or the root of a new trace."""
    if incoming and is_valid(incoming):
        _version, trace, _parent, flags = incoming.strip().lower().split("-")
        return f"00-{trace}-{secrets.token_hex(8)}-{flags}"
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent and is_valid(traceparent) else None
