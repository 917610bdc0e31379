"""The achievement aggregate: its content, review state and dates, and the decisions on it.

Methods return what changed and never touch a store; the service layer persists the result and
publishes the facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from techbridge_shared.errors import ValidationFailed

from .model import LISTED_STATUSES, Status
from .rules import AchievementContent, submission_errors
from .workflow import Transition, ensure_editable, transition

# Fields announced in achievement.published/updated; a change elsewhere (confidential details,
# inventors, co-owners) is not news for the market.
PUBLISHED_FIELDS = (
    "title_zh", "title_en", "abstract_zh", "abstract_en", "keywords", "fields", "ipc_codes",
    "ip_type", "trl", "transfer_modes", "asking_price", "negotiable", "region", "ip_records",
)


@dataclass(frozen=True)
class Achievement:
    id: str
    owner_org_id: str
    status: Status
    version: int
    content: AchievementContent
    created_at: datetime
    updated_at: datetime
    listed_at: datetime
    submitted_at: datetime | None = None
    published_at: datetime | None = None
    expires_at: datetime | None = None
    transferred_at: datetime | None = None
    status_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # --- decisions ------------------------------------------------------------------------
    def edited(self, content: AchievementContent, now: datetime) -> Achievement:
        ensure_editable(self.status)
        return replace(self, content=content, version=self.version + 1, updated_at=now)

    def moved(self, action: str, now: datetime, *, reason: str | None = None,
              listing_ttl: timedelta | None = None) -> tuple[Achievement, Transition]:
        t = transition(self.status, action)
        if action == "submit":
            errors = submission_errors(self.content)
            if errors:
                raise ValidationFailed(
                    "the achievement is not complete enough for review: "
                    + "; ".join(f"{e.field}: {e.message}" for e in errors),
                    errors=errors,
                )
        changes: dict[str, Any] = {"status": t.after, "version": self.version + 1, "updated_at": now,
                                   "status_reason": reason}
        if action == "submit":
            changes["submitted_at"] = now
        if action == "publish" or (action == "renew" and self.status == Status.expired):
            changes["published_at"] = now
            changes["listed_at"] = now
        if action in ("publish", "renew"):
            changes["expires_at"] = now + listing_ttl if listing_ttl is not None else None
        if action == "deal_cancelled" and self.expires_at is not None and self.expires_at <= now:
            # The listing ran out while the deal was pending: it does not come back to life.
            changes["status"] = Status.expired
            t = Transition(action, self.status, Status.expired)
        if action == "deal_completed":
            changes["transferred_at"] = now
        return replace(self, **changes), t

    @property
    def is_listed(self) -> bool:
        return self.status in LISTED_STATUSES

    def published_view(self) -> dict[str, Any]:
        return self.content.model_dump(mode="json", include=set(PUBLISHED_FIELDS))

    def published_fields_differ(self, other: Achievement) -> bool:
        return self.published_view() != other.published_view()
