"""Webhook subscriptions to platform events, their delivery log, redelivery and replay."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from techbridge_shared.errors import problem_responses
from techbridge_shared.identity import Identity
from techbridge_shared.pagination import Page, PageParams, encode_cursor, page_params

from ..service import subscriptions as subs
from ..service.context import GatewayContext
from .deps import caller, context

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])


class SubscriptionIn(BaseModel):
    callback_url: str = Field(max_length=2048, description="https URL on a public address that receives the events")
    types: list[str] = Field(min_length=1, max_length=50, description=(
        "Event type patterns: `*` is one name segment, a trailing `*` the rest; "
        "e.g. techbridge.matching.transfer.* or techbridge.vouchers.*"))
    secret: str = Field(min_length=16, max_length=200, description="Key of the HMAC-SHA256 signature on every delivery")
    description: str = Field(default="", max_length=500)

    model_config = {"json_schema_extra": {"examples": [{
        "callback_url": "https://gov.example.cn/techbridge/events",
        "types": ["techbridge.matching.transfer.*", "techbridge.vouchers.*"],
        "secret": "a-long-random-shared-secret", "description": "Pudong S&T commission monitoring"}]}}


class SubscriptionOut(BaseModel):
    subscription_id: str
    callback_url: str
    types: list[str]
    description: str
    owner_org: str | None = Field(description="The subscriber's organisation; events are filtered by it")
    created_at: datetime


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="HTTP status the receiver answered, null if it was not reached")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    delivery_id: str
    event_id: str
    event_type: str
    subject: str
    status: Literal["pending", "delivered", "parked"] = Field(
        description="pending (to be sent or retried), delivered, parked (gave up; redeliver to try again)")
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next")
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    attempt_log: list[AttemptOut] = Field(default_factory=list)


class ReplayIn(BaseModel):
    since: AwareDatetime = Field(description="Deliver again every matching event from this time on (UTC)")


class ReplayOut(BaseModel):
    deliveries_created: int


def _sub(row: dict) -> SubscriptionOut:
    return SubscriptionOut.model_validate({k: row[k] for k in SubscriptionOut.model_fields})


@router.post("", status_code=201, response_model=SubscriptionOut, name="create",
             summary="Subscribe a callback URL to event types",
             description=(
                 "Each matching event the caller may see is POSTed to the callback as a CloudEvent "
                 "(structured mode, `application/cloudevents+json`), signed in `X-Techbridge-Signature: "
                 "t=<unix>,v1=<hex HMAC-SHA256(secret, '<t>.' + body)>`. Failures are retried with "
                 "exponential backoff and parked after a bounded number of attempts; events of one "
                 "aggregate arrive in order."),
             responses=problem_responses(401, 422, 429))
async def create(body: SubscriptionIn, identity: Identity = Depends(caller), ctx: GatewayContext = Depends(context)):
    return _sub(await subs.create(ctx, identity, callback_url=body.callback_url, types=body.types,
                                  secret=body.secret, description=body.description))


@router.get("", response_model=Page[SubscriptionOut], name="list", summary="The caller's subscriptions",
            responses=problem_responses(401))
async def list_(page: PageParams = Depends(page_params), identity: Identity = Depends(caller),
                ctx: GatewayContext = Depends(context)):
    after = str(page.cursor.get("id")) if page.cursor else None
    rows = await subs.list_for(ctx, identity, after, page.limit + 1)
    nxt = encode_cursor({"id": rows[page.limit - 1]["subscription_id"]}) if len(rows) > page.limit else None
    return Page[SubscriptionOut](items=[_sub(r) for r in rows[:page.limit]], next_cursor=nxt)


@router.get("/{subscription_id}", response_model=SubscriptionOut, name="get", summary="One subscription",
            responses=problem_responses(401, 404))
async def get(subscription_id: str, identity: Identity = Depends(caller), ctx: GatewayContext = Depends(context)):
    return _sub(await subs.get(ctx, identity, subscription_id))


@router.delete("/{subscription_id}", status_code=204, name="delete", summary="Unsubscribe",
               responses=problem_responses(401, 404))
async def delete(subscription_id: str, identity: Identity = Depends(caller),
                 ctx: GatewayContext = Depends(context)) -> None:
    await subs.delete(ctx, identity, subscription_id)


@router.get("/{subscription_id}/deliveries", response_model=Page[DeliveryOut], name="deliveries",
            summary="The delivery log: every delivery with its attempts, oldest event first",
            responses=problem_responses(401, 404, 422))
async def deliveries(
    subscription_id: str,
    status: Literal["pending", "delivered", "parked"] | None = Query(default=None),
    page: PageParams = Depends(page_params), identity: Identity = Depends(caller),
    ctx: GatewayContext = Depends(context),
):
    after = (int(page.cursor["seq"]), str(page.cursor["id"])) if page.cursor else None
    rows, attempts = await subs.deliveries(ctx, identity, subscription_id, status=status, after=after,
                                           limit=page.limit + 1)
    items = []
    for r in rows[:page.limit]:
        items.append(DeliveryOut(
            **{k: r[k] for k in DeliveryOut.model_fields if k in r},
            attempt_log=[AttemptOut(**{k: a[k] for k in AttemptOut.model_fields}) for a in attempts[r["delivery_id"]]],
        ))
    nxt = None
    if len(rows) > page.limit:
        last = rows[page.limit - 1]
        nxt = encode_cursor({"seq": last["event_seq"], "id": last["delivery_id"]})
    return Page[DeliveryOut](items=items, next_cursor=nxt)


@router.post("/{subscription_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut,
             name="redeliver", summary="Send one delivery again", responses=problem_responses(401, 404))
async def redeliver(subscription_id: str, delivery_id: str, identity: Identity = Depends(caller),
                    ctx: GatewayContext = Depends(context)):
    r = await subs.redeliver(ctx, identity, subscription_id, delivery_id)
    return DeliveryOut(**{k: r[k] for k in DeliveryOut.model_fields if k in r})


@router.post("/{subscription_id}/replay", response_model=ReplayOut, name="replay",
             summary="Deliver again every matching event since a point in time",
             responses=problem_responses(401, 404, 422))
async def replay(subscription_id: str, body: ReplayIn, identity: Identity = Depends(caller),
                 ctx: GatewayContext = Depends(context)):
    return ReplayOut(deliveries_created=await subs.replay(ctx, identity, subscription_id, body.since))
