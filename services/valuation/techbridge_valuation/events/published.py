"""What valuation publishes: topic techbridge.valuation.valuation.v1, key = valuation id."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from techbridge_shared.envelope import new_event, topic_name, event_type
from techbridge_shared.money import Money

SERVICE = "valuation"
VALUATION_TOPIC = topic_name(SERVICE, "valuation")
VALUATION_COMPLETED = event_type(SERVICE, "valuation", "completed")


class ValuationCompleted(BaseModel):
    """A valuation of an achievement was completed; the catalog shows the latest on the achievement."""

    model_config = ConfigDict(frozen=True)

    valuation_id: str
    achievement_id: str
    requested_by_org_id: str | None
    requester_role: str = Field(description="owner | buyer | agency | government | admin: a buyer's "
                                "valuation is its own negotiating analysis, not the achievement's public value")
    low: Money
    mid: Money
    high: Money
    methods: list[str]
    table_version: str
    report_path: str = Field(description="Gateway path of the HTML report (access-controlled)")
    completed_at: datetime


def valuation_completed(data: ValuationCompleted):
    return new_event(service=SERVICE, aggregate="valuation", verb="completed", subject=data.valuation_id, data=data)
