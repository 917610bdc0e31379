"""What the service knows of an achievement and of completed deals (its own read model, as values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from .defaults import DefaultsTable

# Legal statuses under which a right no longer protects anything.
DEAD_STATUSES = {"lapsed", "invalidated", "invalid", "expired", "abandoned", "rejected", "withdrawn", "revoked", "terminated"}
PENDING_STATUSES = {"pending", "filed", "application", "under_examination", "published"}


@dataclass(frozen=True)
class IpRecord:
    number: str
    kind: str | None = None
    filing_date: date | None = None
    grant_date: date | None = None
    legal_status: str | None = None
    expiry_date: date | None = None


@dataclass(frozen=True)
class Subject:
    achievement_id: str
    owner_org_id: str
    version: int = 1
    title_zh: str = ""
    title_en: str = ""
    ipc_codes: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    ip_type: str = "invention_patent"
    trl: int = 1
    transfer_modes: tuple[str, ...] = ()
    asking_price: int | None = None
    currency: str = "CNY"
    ip_records: tuple[IpRecord, ...] = ()
    status: str = "published"


@dataclass(frozen=True)
class Protection:
    """How long the subject's rights last, seen from the valuation date."""

    ends_on: date | None  # None: no statutory term (know-how, prototype) or no dated record
    remaining_years: float | None
    basis: str
    pending: bool = False  # protection rests on applications not yet granted
    notes: tuple[str, ...] = field(default_factory=tuple)


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def protection(subject: Subject, on: date, table: DefaultsTable) -> Protection:
    """The latest end of protection over the subject's live IP records."""
    term = table.statutory_term_years.get(subject.ip_type)
    best: tuple[date, str, bool] | None = None
    notes: list[str] = []
    for rec in subject.ip_records:
        status = (rec.legal_status or "").strip().lower()
        if status in DEAD_STATUSES:
            notes.append(f"{rec.number}: legal status '{rec.legal_status}', not counted")
            continue
        if rec.expiry_date:
            end, basis = rec.expiry_date, f"{rec.number}: expiry date on record"
        elif rec.filing_date and term:
            end = _add_years(rec.filing_date, int(term.value))
            basis = f"{rec.number}: filed {rec.filing_date.isoformat()} + {int(term.value)} years ({term.source})"
        else:
            continue
        pending = status in PENDING_STATUSES or (rec.grant_date is None and subject.ip_type in ("invention_patent", "utility_model"))
        if best is None or end > best[0]:
            best = (end, basis, pending)
    if best is None:
        if term is None:
            return Protection(None, None, f"{subject.ip_type}: no statutory term; the economic life is stated by the requester", notes=tuple(notes))
        return Protection(None, None, "no dated, live IP record", notes=tuple(notes))
    end, basis, pending = best
    remaining = max(0.0, (end - on).days / 365.25)
    if pending:
        notes.append("protection rests on an application not yet granted")
    return Protection(end, remaining, basis, pending, tuple(notes))


@dataclass(frozen=True)
class Transfer:
    """A completed deal from matching, as a market comparable."""

    transfer_id: str
    achievement_ids: tuple[str, ...]
    seller_org_id: str
    buyer_org_id: str
    mode: str | None
    exclusive: bool | None
    territory: str | None
    term_months: int | None
    price: int | None  # minor units
    currency: str
    royalty_rate_bp: int | None
    ipc_codes: tuple[str, ...]
    fields: tuple[str, ...]
    trl: int | None
    completed_at: str | None
