"""Figures the pages compute from API answers: pure functions, no I/O.

- `programme_timeline` replays a programme's journal (`GET /vouchers/programmes/{id}/statement`)
  into budget, issued and settled after every entry, with the dashboard's own definitions:
  budget = what the funding account gave out, issued = budget - unissued, settled = agency
  payable + paid. So the last point equals the dashboard figures.
- `top_institutions` ranks the selling organisations of deals by how many they made and their value.
- `offer_changes` names the terms an offer changed against the one before (the deal room's history).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

LIVE_DEAL = {"proposed", "negotiating", "signed", "in_notice", "completed"}
OFFER_TERMS = ("mode", "exclusive", "territory", "term_months", "price", "royalty", "pricing")


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def programme_timeline(lines: Iterable[dict], programme_id: str) -> list[tuple[float, list[int]]]:
    """(unix seconds, [budget, issued, settled] in minor units) after each journal entry, in order."""
    funding, unissued = f"programme:{programme_id}:funding", f"programme:{programme_id}:unissued"
    balances: dict[str, int] = defaultdict(int)
    points: list[tuple[float, list[int]]] = []
    for line in sorted(lines, key=lambda e: e["seq"]):
        for p in line.get("postings") or []:
            balances[p["account_id"]] += int(p["amount"])
        budget = -balances[funding]
        settled = sum(v for k, v in balances.items()
                      if k.startswith(f"agency:{programme_id}:") and k.endswith((":payable", ":paid")))
        point = [budget, budget - balances[unissued], settled]
        ts = _ts(line["created_at"])
        if points and points[-1][0] == ts:
            points[-1] = (ts, point)
        elif not points or points[-1][1] != point:
            points.append((ts, point))
    return points


def deal_value(transfer: dict) -> int:
    price = (transfer.get("current_offer") or {}).get("price") or {}
    return int(price.get("amount") or 0)


def top_institutions(transfers: Iterable[dict], limit: int = 8) -> list[tuple[str, int, int]]:
    """(seller org id, number of live deals, their lump-sum value in minor units), most deals first,
    then the higher value, then the id. Cancelled deals do not count."""
    count: dict[str, int] = defaultdict(int)
    value: dict[str, int] = defaultdict(int)
    for t in transfers:
        if t.get("status") not in LIVE_DEAL:
            continue
        count[t["seller_org_id"]] += 1
        value[t["seller_org_id"]] += deal_value(t)
    ranked = sorted(count, key=lambda org: (-count[org], -value[org], org))
    return [(org, count[org], value[org]) for org in ranked[:limit]]


def offer_changes(offers: Sequence[dict]) -> dict[int, list[str]]:
    """Offer version -> the terms it changed against the version before (the first changes none)."""
    out: dict[int, list[str]] = {}
    ordered = sorted(offers, key=lambda o: o["version"])
    for before, after in zip([None, *ordered[:-1]], ordered, strict=True):
        out[after["version"]] = [] if before is None else [k for k in OFFER_TERMS if before.get(k) != after.get(k)]
    return out
