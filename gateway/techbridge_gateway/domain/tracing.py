"""W3C Trace Context: keep the caller's trace, start a child span for the hop through the gateway."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def child_traceparent(incoming: str | None) -> str:
    """A traceparent for the upstream call: same trace id as `incoming` if valid, new span id."""
    if incoming:
        m = _TRACEPARENT_RE.match(incoming.strip().lower())
        if m and m.group(1) != "ff" and m.group(2) != "0" * 32 and m.group(3) != "0" * 16:
            return f"00-{m.group(2)}-{secrets.token_hex(8)}-{m.group(4)}"
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]
