"""The review workflow of an achievement, as a table of allowed transitions.

    draft -submit-> submitted -publish-> published -withdraw-> withdrawn
                       |  \\-return-> returned -submit-> submitted
                       \\-reject-> rejected (final)
    published -expire-> expired -renew-> published
    published -deal signed-> under_negotiation -deal completed-> transferred (final)
                                      \\-deal cancelled-> published

Anything not in the table is refused with `IllegalTransition`, which names the action, the
state it was tried from and why it is not allowed there.
"""

from __future__ import annotations

from dataclasses import dataclass

from techbridge_shared.errors import Conflict

from .model import Status

S = Status

# action -> {from state: to state}
TRANSITIONS: dict[str, dict[Status, Status]] = {
    "submit": {S.draft: S.submitted, S.returned: S.submitted},
    "publish": {S.submitted: S.published},
    "return": {S.submitted: S.returned},
    "reject": {S.submitted: S.rejected},
    "withdraw": {
        S.draft: S.withdrawn, S.submitted: S.withdrawn, S.returned: S.withdrawn,
        S.published: S.withdrawn, S.expired: S.withdrawn,
    },
    "reopen": {S.withdrawn: S.draft},
    "expire": {S.published: S.expired},
    "renew": {S.published: S.published, S.expired: S.published},
    "deal_signed": {S.published: S.under_negotiation, S.under_negotiation: S.under_negotiation,
                    S.expired: S.under_negotiation},
    "deal_cancelled": {S.under_negotiation: S.published},
    "deal_completed": {S.published: S.transferred, S.under_negotiation: S.transferred,
                       S.expired: S.transferred, S.withdrawn: S.transferred},
}

# Edits of content: allowed while the owner holds the pen, and on live listings (announced as
# `achievement.updated`); not while a reviewer is looking at it or once it is closed.
EDITABLE: frozenset[Status] = frozenset({S.draft, S.returned, S.published, S.under_negotiation, S.expired})

WHY_NOT: dict[Status, str] = {
    S.draft: "it is a draft that has not been submitted for review",
    S.submitted: "it is waiting for a reviewer's decision",
    S.returned: "it was returned for correction and must be resubmitted",
    S.rejected: "it was rejected; rejection is final (create a new achievement instead)",
    S.published: "it is already published",
    S.under_negotiation: "a signed transfer binds it until the deal completes or is cancelled",
    S.transferred: "it has been transferred; that is final",
    S.withdrawn: "it was withdrawn by its owner (reopen it as a draft first)",
    S.expired: "its listing expired (renew it first)",
}


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Transition not allowed"

    def __init__(self, action: str, current: Status):
        sources = EDITABLE if action == "edit" else TRANSITIONS.get(action, {})
        allowed = sorted(s.value for s in sources)
        self.action = action
        self.current = current
        super().__init__(
            f"cannot {action.replace('_', ' ')} an achievement in state '{current.value}': "
            f"{WHY_NOT[current]}; '{action}' is allowed only from: {', '.join(allowed) or 'nowhere'}"
        )


@dataclass(frozen=True)
class Transition:
    action: str
    before: Status
    after: Status


def transition(current: Status, action: str) -> Transition:
    """The state after `action`, or IllegalTransition naming the refused transition."""
    after = TRANSITIONS.get(action, {}).get(current)
    if after is None:
        raise IllegalTransition(action, current)
    return Transition(action, current, after)


def ensure_editable(current: Status) -> None:
    if current not in EDITABLE:
        raise IllegalTransition("edit", current)

