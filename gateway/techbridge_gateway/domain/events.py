"""Which events a subscriber wants (type patterns) and may see (role and organisation).

Patterns are event types with `*` standing for one dot-separated segment and a trailing `*`
(or `**`) for the rest: `techbridge.matching.transfer.*` matches every transfer event of any
version, `techbridge.vouchers.*` every voucher-service event, `*` everything.

Visibility:
- admin and government see every event;
- everyone sees public market facts (published achievements, organisations, open demands);
- otherwise an event is visible only to an organisation it names (any `*org_id` / `*org_ids`
  field of its data), so an enterprise sees its own transfers and vouchers and no one else's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from techbridge_shared.identity import Identity

_SEGMENT = r"[a-z0-9*-]+"
_PATTERN_RE = re.compile(rf"^(\*|techbridge(\.{_SEGMENT})*(\.\*\*)?)$")

SEE_ALL_ROLES = frozenset({"admin", "government"})

PUBLIC_TYPE_PREFIXES = (
    "techbridge.catalog.organisation.",
    "techbridge.catalog.achievement.published.",
    "techbridge.catalog.achievement.updated.",
    "techbridge.catalog.achievement.withdrawn.",
    "techbridge.catalog.achievement.expired.",
    "techbridge.catalog.achievement.transferred.",
    "techbridge.matching.demand.published.",
    "techbridge.matching.demand.closed.",
    "techbridge.matching.demand.fulfilled.",
    "techbridge.matching.demand.expired.",
)


def valid_pattern(pattern: str) -> bool:
    return len(pattern) <= 200 and bool(_PATTERN_RE.match(pattern))


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern in ("*", "**"):
        return re.compile(r"^.*$")
    parts = pattern.split(".")
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**" or (part == "*" and last):
            out.append(r"[^.]+(\.[^.]+)*")
        else:
            out.append("[^.]+".join(re.escape(p) for p in part.split("*")))
    return re.compile("^" + r"\.".join(out) + "$")


def type_matches(patterns: Iterable[str], type_: str) -> bool:
    return any(_compiled(p).match(type_) for p in patterns)


def org_ids_in(data: Mapping[str, Any]) -> frozenset[str]:
    """Every organisation an event names, from `*org_id` and `*org_ids` fields at the top level."""
    found: set[str] = set()
    for key, value in data.items():
        if key.endswith("org_id") and isinstance(value, str) and value:
            found.add(value)
        elif key.endswith("org_ids") and isinstance(value, list):
            found.update(v for v in value if isinstance(v, str) and v)
        elif key == "organisation_id" and isinstance(value, str) and value:
            found.add(value)
    return frozenset(found)


def is_public(type_: str) -> bool:
    return type_.startswith(PUBLIC_TYPE_PREFIXES)


def may_see(*, roles: Iterable[str], org: str | None, type_: str, orgs: Iterable[str]) -> bool:
    if SEE_ALL_ROLES.intersection(roles):
        return True
    if is_public(type_):
        return True
    return org is not None and org in set(orgs)


def identity_may_see(identity: Identity, type_: str, data: Mapping[str, Any]) -> bool:
    return may_see(roles=identity.roles, org=identity.org, type_=type_, orgs=org_ids_in(data))
