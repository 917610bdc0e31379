"""The words of the catalog: organisation kinds, IP types, transfer modes, review states.

Plain values only; no I/O. Shares are integer basis points (10,000 = 100 %) so that adding
them up is exact.
"""

from __future__ import annotations

from enum import StrEnum


class OrgKind(StrEnum):
    university = "university"
    institute = "institute"
    enterprise = "enterprise"
    agency = "agency"
    government = "government"
    other = "other"


class IpType(StrEnum):
    invention_patent = "invention_patent"
    utility_model = "utility_model"
    software_copyright = "software_copyright"
    ic_layout = "ic_layout"
    plant_variety = "plant_variety"
    know_how = "know_how"
    prototype = "prototype"


class TransferMode(StrEnum):
    assignment = "assignment"
    exclusive_licence = "exclusive_licence"
    non_exclusive_licence = "non_exclusive_licence"
    equity = "equity"
    co_development = "co_development"
    technical_service = "technical_service"


# Bit per transfer mode, so a listing's modes fit one integer column that both stores filter
# and count with `modes & bit` (no side table, one pass for all mode facets).
MODE_BITS: dict[TransferMode, int] = {m: 1 << i for i, m in enumerate(TransferMode)}


def modes_to_bits(modes) -> int:
    bits = 0
    for m in modes:
        bits |= MODE_BITS[TransferMode(m)]
    return bits


def bits_to_modes(bits: int) -> list[str]:
    return [m.value for m, b in MODE_BITS.items() if bits & b]


class LegalStatus(StrEnum):
    pending = "pending"          # filed, under examination
    granted = "granted"          # in force
    lapsed = "lapsed"            # fees unpaid / expired
    invalidated = "invalidated"
    withdrawn = "withdrawn"
    registered = "registered"    # copyrights, layouts, plant varieties
    not_applicable = "not_applicable"  # know-how, prototypes


class Status(StrEnum):
    draft = "draft"
    submitted = "submitted"
    returned = "returned"
    rejected = "rejected"
    published = "published"
    under_negotiation = "under_negotiation"
    transferred = "transferred"
    withdrawn = "withdrawn"
    expired = "expired"


# What anyone may find and read (the teaser); everything else only the owner and reviewers see.
PUBLIC_STATUSES: frozenset[Status] = frozenset(
    {Status.published, Status.under_negotiation, Status.transferred}
)
# What the search shows when the caller names no status: what can still be acquired.
DEFAULT_SEARCH_STATUSES: tuple[Status, ...] = (Status.published, Status.under_negotiation)
# States in which the listing is live in the market (its published fields are announced).
LISTED_STATUSES: frozenset[Status] = frozenset({Status.published, Status.under_negotiation})

SHARES_TOTAL_BP = 10_000
