"""Request and response bodies (the published HTTP contract)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from techbridge_shared.money import Money

from ..domain.common import MAX_AMOUNT, DeclineReason, TransferMode
from ..domain.transfers import Pricing
from ..retrieval.ipc import normalise_ipc

MAX_TEXT = 20_000


def _ipc(code: str) -> str:
    try:
        return normalise_ipc(code)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


IpcCode = Annotated[str, Field(max_length=40, description="IPC code, e.g. 'H01M 10/052'"), AfterValidator(_ipc)]


class Amount(Money):
    amount: int = Field(ge=0, le=MAX_AMOUNT, description="Integer minor units (fen); at most 10^14")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemandFields(_Strict):
    title: str = Field(min_length=2, max_length=300, description="Short statement of the need")
    problem: str = Field(min_length=10, max_length=MAX_TEXT, description="The technical problem, in Chinese or English")
    ipc_codes: list[IpcCode] = Field(default_factory=list, max_length=20, description="IPC codes if known")
    keywords: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(default_factory=list, max_length=30)
    budget_min: Amount | None = Field(default=None, description="Lowest budget")
    budget_max: Amount | None = Field(default=None, description="Highest budget; asking prices above it miss the budget")
    deadline: date | None = Field(default=None, description="After this day the demand expires")
    transfer_modes: list[TransferMode] = Field(default_factory=list, description="Wanted modes; empty = any")
    min_trl: int | None = Field(default=None, ge=1, le=9, description="Lowest acceptable technology readiness level")
    region: str | None = Field(default=None, max_length=120, description="e.g. 'Shanghai' or 'Shanghai/Pudong'")

    @field_validator("title", "problem")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    @field_validator("budget_max")
    @classmethod
    def _same_currency(cls, v, info):
        lo = info.data.get("budget_min")
        if v is not None and lo is not None and lo.currency != v.currency:
            raise ValueError("budget_min and budget_max must be in the same currency")
        return v


class DemandOut(BaseModel):
    id: str
    owner_org_id: str
    status: str = Field(description="draft | published | closed | fulfilled | expired")
    title: str
    problem: str
    ipc_codes: list[str]
    keywords: list[str]
    budget_min: Money | None
    budget_max: Money | None
    deadline: date | None
    transfer_modes: list[str]
    min_trl: int | None
    region: str | None
    created_at: datetime | None
    published_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None


class CloseIn(_Strict):
    reason: str | None = Field(default=None, max_length=500)


class ProposalIn(_Strict):
    achievement_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(
        min_length=1, max_length=20, description="Published achievements put forward (an institution's own; an agency's any)")
    message: str = Field(min_length=1, max_length=5000, description="Why these achievements answer the demand")


class ProposalOut(BaseModel):
    id: str
    demand_id: str
    proposer_org_id: str
    achievement_ids: list[str]
    message: str
    status: str = Field(description="submitted | accepted (shortlisted) | rejected | withdrawn | in_deal")
    created_at: datetime
    decided_at: datetime | None = Field(default=None, description="When the demand's owner accepted or rejected it")
    reject_reason: str | None = Field(default=None, description="Coded reason of a rejection")
    reject_note: str | None = None
    withdrawn_at: datetime | None = None
    transfer_id: str | None = Field(default=None, description="The deal proposed from it (status in_deal)")


class ProposalRejectIn(_Strict):
    reason: DeclineReason = Field(description="not_relevant, trl_too_low, price, ip_status, timing, already_solved, region, other")
    note: str | None = Field(default=None, max_length=1000)


class Constraint(BaseModel):
    name: str
    detail: str
    hard: bool | None = None


class Explanation(BaseModel):
    summary: str = Field(description="One sentence a person can check against both records")
    matched_terms: list[str] = Field(description="Query words found in the other record")
    term_coverage: float = Field(description="idf-weighted share of the query's terms found (0..1)")
    semantic_similarity: float = Field(description="Cosine similarity of the MiniLM embeddings")
    shared_ipc: list[str] = Field(description="Deepest IPC classes both share")
    ipc_overlap: float
    lexical_rank: int | None
    semantic_rank: int | None
    constraints_met: list[Constraint]
    constraints_missed: list[Constraint]
    constraints_unknown: list[Constraint]
    adjustments: list[str] = Field(description="Demotions from soft misses and earlier declines")


class AchievementMatch(BaseModel):
    achievement_id: str
    version: int
    owner_org_id: str
    title: str
    trl: int | None
    asking_price: Money | None
    region: str | None
    score: float = Field(description="Ranking score (fused rank evidence, after constraints and feedback)")
    relevance: float = Field(description="Absolute fit 0..1 (saved matching compares it with the threshold)")
    explanation: Explanation


class DemandMatches(BaseModel):
    demand_id: str
    items: list[AchievementMatch]


class DemandMatch(BaseModel):
    demand_id: str
    owner_org_id: str
    title: str
    deadline: date | None
    score: float
    relevance: float
    explanation: Explanation


class AchievementMatches(BaseModel):
    achievement_id: str
    items: list[DemandMatch]


class DeclineIn(_Strict):
    achievement_id: str = Field(min_length=1, max_length=36)
    reason: DeclineReason
    note: str | None = Field(default=None, max_length=1000)


class DeclineOut(BaseModel):
    demand_id: str
    achievement_id: str
    reason: str
    note: str | None
    created_at: datetime


class RoyaltyIn(_Strict):
    rate_bp: int = Field(ge=1, le=10_000, description="Royalty rate in basis points (500 = 5%)")
    base: str = Field(min_length=1, max_length=200, description="What the rate applies to, e.g. 'net sales'")
    minimum_annual: Amount | None = None


class OfferIn(_Strict):
    mode: TransferMode
    exclusive: bool
    territory: str = Field(min_length=1, max_length=200, description="e.g. 'CN' or 'worldwide'")
    term_months: int | None = Field(default=None, ge=1, le=600)
    price: Amount | None = Field(default=None, description="Lump sum")
    royalty: RoyaltyIn | None = None
    pricing: Pricing = Field(default=Pricing.private_agreement,
                             description="private_agreement prices go through a public notice before completion")
    milestones: list[dict] = Field(default_factory=list, max_length=50)
    note: str | None = Field(default=None, max_length=5000)


class TransferIn(_Strict):
    seller_org_id: str = Field(min_length=1, max_length=64)
    buyer_org_id: str = Field(min_length=1, max_length=64)
    achievement_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(min_length=1, max_length=20)
    demand_id: str | None = Field(default=None, max_length=36)
    offer: OfferIn


class ProposalDealIn(_Strict):
    achievement_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] | None = Field(
        default=None, max_length=20,
        description="Which of the proposal's achievements the deal covers (default: all; they must have one owner)")
    offer: OfferIn


class CounterOfferIn(_Strict):
    based_on_version: int = Field(ge=1, description="The offer version this answers (stale answers are refused)")
    offer: OfferIn


class SignIn(_Strict):
    offer_version: int = Field(ge=1, description="The offer version being signed; must be the current one")


class CancelIn(_Strict):
    reason: str = Field(min_length=1, max_length=1000)


class OfferOut(BaseModel):
    version: int
    made_by_org_id: str
    mode: str
    exclusive: bool
    territory: str
    term_months: int | None
    price: Money | None
    royalty: dict | None
    pricing: str
    milestones: list[dict]
    note: str | None
    created_at: datetime | None


class TransferOut(BaseModel):
    id: str
    status: str = Field(description="proposed | negotiating | signed | in_notice | completed | cancelled")
    seller_org_id: str
    buyer_org_id: str
    achievement_ids: list[str]
    demand_id: str | None
    proposal_id: str | None = Field(default=None, description="The accepted proposal the deal came from, if any")
    proposed_by_org_id: str
    current_offer: OfferOut
    offers: list[OfferOut]
    seller_signed_at: datetime | None
    buyer_signed_at: datetime | None
    signed_at: datetime | None
    notice_starts_at: datetime | None
    notice_ends_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancelled_reason: str | None
    created_at: datetime | None


class NoticeOut(BaseModel):
    transfer_id: str
    achievement_ids: list[str]
    achievement_titles: list[str]
    seller_org_id: str
    buyer_org_id: str
    mode: str
    price: Money | None
    notice_starts_at: datetime
    notice_ends_at: datetime
