"""A catalog search as plain values: text, filters, sort and page position."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import IpType, Status, TransferMode

FACETS = ("ip_type", "trl", "transfer_mode", "ipc_class", "institution", "status")


@dataclass(frozen=True)
class SearchQuery:
    text_tokens: tuple[str, ...] = ()
    ipc_prefixes: tuple[str, ...] = ()     # keys without spaces, e.g. 'H01M10'
    trl_min: int | None = None
    trl_max: int | None = None
    ip_types: tuple[IpType, ...] = ()
    transfer_modes: tuple[TransferMode, ...] = ()
    owner_org_ids: tuple[str, ...] = ()
    price_min: int | None = None
    price_max: int | None = None
    currency: str = "CNY"
    region: str | None = None
    statuses: tuple[Status, ...] = ()
    sort: str = "relevance"                 # relevance | recency
    limit: int = 20
    cursor: dict | None = None
    facets: bool = True


@dataclass(frozen=True)
class Viewer:
    org: str | None
    reviewer: bool


@dataclass
class SearchHit:
    achievement_id: str
    score: float | None
    row: dict


@dataclass
class SearchResult:
    hits: list[SearchHit]
    next_cursor: dict | None
    total: int
    facets: dict[str, list[dict]] = field(default_factory=dict)
