"""Who may request and who may see a valuation.

Request: the achievement's owner organisation, agencies, government (and platform admins), and
the buyer organisation of a signed or completed deal for the achievement.
See: agencies, government and admins; the organisation that requested it; and the owner
organisation for every valuation of its achievement except those a buyer requested - a buyer's
valuation is its own negotiating analysis and stays private to it.
"""

from __future__ import annotations

from techbridge_shared.identity import Identity

OVERSIGHT_ROLES = ("admin", "government", "agency")


def requester_role(identity: Identity, owner_org_id: str, buyer_org_ids: set[str]) -> str | None:
    """The capacity in which the caller requests: owner, buyer, government, agency, admin; None = refused."""
    if identity.org and identity.org == owner_org_id:
        return "owner"
    if identity.org and identity.org in buyer_org_ids:
        return "buyer"
    for role in ("government", "agency", "admin"):
        if role in identity.roles:
            return role
    return None


def may_see(identity: Identity, *, owner_org_id: str, requested_by_org_id: str | None, requester_role: str) -> bool:
    if identity.has_any(*OVERSIGHT_ROLES):
        return True
    if identity.org is None:
        return False
    if identity.org == requested_by_org_id:
        return True
    return identity.org == owner_org_id and requester_role != "buyer"
