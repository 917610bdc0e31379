"""Webhook deliveries: the signature, the retry schedule, and which callback URLs are allowed.

Signature (in the `X-Techbridge-Signature` header): `t=<unix seconds>,v1=<hex>` where hex is
HMAC-SHA256(subscription secret, "<t>." + raw body). A receiver recomputes it, compares in
constant time, and refuses timestamps older than a few minutes (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from collections.abc import Iterable
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Techbridge-Signature"
DELIVERY_HEADER = "X-Techbridge-Delivery"
ATTEMPT_HEADER = "X-Techbridge-Delivery-Attempt"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (used by the tests and shown in the README)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: exponential with ±20 % jitter, capped at `max_s`."""
    raw = min(max_s, base_s * 2 ** max(0, attempt - 1))
    jitter = (rng or random).uniform(0.8, 1.2)
    return min(max_s, raw * jitter)


class CallbackRefused(ValueError):
    """The callback URL may not be used; the message says why."""


def check_callback_url(url: str, *, allow_http: bool) -> tuple[str, int]:
    """Scheme, host and port rules; returns (host, port) for address checks."""
    if len(url) > 2048:
        raise CallbackRefused("callback URL is longer than 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in (("https", "http") if allow_http else ("https",)):
        raise CallbackRefused("callback URL must use https" if not allow_http else "callback URL must be http or https")
    if parts.username or parts.password:
        raise CallbackRefused("callback URL must not carry credentials")
    if not parts.hostname:
        raise CallbackRefused("callback URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("callback URL has an invalid port") from None
    return parts.hostname, port


def check_addresses(addresses: Iterable[str], *, allow_loopback: bool, allow_private: bool) -> None:
    """Every address the host resolves to must be public (or loopback in development)."""
    addresses = list(addresses)
    if not addresses:
        raise CallbackRefused("callback host does not resolve")
    for raw in addresses:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            if allow_loopback:
                continue
            raise CallbackRefused(f"callback host resolves to a loopback address ({ip})")
        if ip.is_global:
            continue
        if allow_private and ip.is_private and not ip.is_link_local and not ip.is_multicast:
            continue
        raise CallbackRefused(f"callback host resolves to a non-public address ({ip})")
