"""Who may see and do what with an achievement. Pure decisions over plain values."""

from __future__ import annotations

from collections.abc import Iterable

from .model import PUBLIC_STATUSES, Status

REVIEWER_ROLES = ("admin", "government")


def is_reviewer(roles: Iterable[str]) -> bool:
    return any(r in REVIEWER_ROLES for r in roles)


def is_owner(caller_org: str | None, owner_org_id: str) -> bool:
    return caller_org is not None and caller_org == owner_org_id


def can_read(status: Status, *, caller_org: str | None, roles: Iterable[str], owner_org_id: str,
             deal_parties: Iterable[str] = ()) -> bool:
    """Public listings: everyone; drafts and review states: the owner and reviewers."""
    if status in PUBLIC_STATUSES or is_owner(caller_org, owner_org_id) or is_reviewer(roles):
        return True
    return caller_org is not None and caller_org in set(deal_parties)


def can_see_confidential(*, caller_org: str | None, owner_org_id: str, deal_parties: Iterable[str]) -> bool:
    """The owner organisation and the parties of a signed (not cancelled) deal; nobody else,
    not even reviewers or admins."""
    if is_owner(caller_org, owner_org_id):
        return True
    return caller_org is not None and caller_org in set(deal_parties)
