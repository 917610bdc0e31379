"""What a valid achievement and a valid organisation are. Pure rules, no I/O.

`AchievementContent` is everything the owner writes (the API, the bulk import and the store all
use it); `check_content` adds the rules that span fields (shares add up to 100 %, a price or
"negotiable", dates in order) and reports every violation with the field it concerns.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from techbridge_shared.errors import FieldError, ValidationFailed
from techbridge_shared.money import Money

from .model import SHARES_TOTAL_BP, IpType, LegalStatus, OrgKind, TransferMode

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]

# IPC symbol: section letter, two-digit class, subclass letter, then "group/subgroup".
_IPC_RE = re.compile(r"^([A-H])(\d{2})([A-Z])\s*(?:(\d{1,4})\s*/\s*(\d{2,6}))?$")


def normalise_ipc(code: str) -> str:
    """'h01m10/052' -> 'H01M 10/052'; 'H01M' stays a subclass. ValueError if not IPC."""
    m = _IPC_RE.match(code.strip().upper())
    if not m:
        raise ValueError(f"{code!r} is not an IPC symbol such as 'H01M 10/052' or 'H01M'")
    section, cls, sub, group, subgroup = m.groups()
    head = f"{section}{cls}{sub}"
    return f"{head} {int(group)}/{subgroup}" if group else head


def ipc_key(code: str) -> str:
    """Spaces removed, for prefix matching: 'H01M 10/052' -> 'H01M10/052'."""
    return code.replace(" ", "").upper()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class IpRecord(_Strict):
    number: Short = Field(description="Patent or application number, registration number, e.g. CN202310123456.7")
    kind: IpType = Field(description="What the record protects")
    filing_date: date | None = Field(default=None, description="Filing (application) date")
    grant_date: date | None = Field(default=None, description="Grant or registration date")
    legal_status: LegalStatus = Field(default=LegalStatus.pending, description="Current legal status")
    expiry_date: date | None = Field(default=None, description="When protection ends")
    ipc_codes: list[str] = Field(default_factory=list, max_length=20, description="IPC symbols of this record")

    @field_validator("ipc_codes")
    @classmethod
    def _ipc(cls, v: list[str]) -> list[str]:
        return [normalise_ipc(c) for c in v]

    @model_validator(mode="after")
    def _dates(self):
        if self.filing_date and self.grant_date and self.grant_date < self.filing_date:
            raise ValueError("grant_date is before filing_date")
        if self.expiry_date and self.filing_date and self.expiry_date < self.filing_date:
            raise ValueError("expiry_date is before filing_date")
        return self


class Inventor(_Strict):
    name: Short = Field(description="Full name")
    org_id: str | None = Field(default=None, max_length=64, description="Organisation of the inventor, if registered")
    role: str | None = Field(default=None, max_length=100, description="e.g. lead inventor, professor")


class CoOwner(_Strict):
    name: Short = Field(description="Name of the co-owning organisation or person")
    org_id: str | None = Field(default=None, max_length=64, description="Registry id, if registered")
    share_bp: int = Field(ge=1, le=SHARES_TOTAL_BP, description="Share in basis points (10000 = 100 %)")


class AchievementContent(_Strict):
    """What the owner writes about an achievement. Teaser fields are public once published;
    `confidential_details` is shown only to the owner organisation and parties of a signed deal."""

    title_zh: str = Field(default="", max_length=200, description="Chinese title")
    title_en: str = Field(default="", max_length=300, description="English title")
    abstract_zh: str = Field(default="", max_length=5000, description="Public teaser (Chinese)")
    abstract_en: str = Field(default="", max_length=10000, description="Public teaser (English)")
    confidential_details: str = Field(default="", max_length=50000, description="Details shown only to the owner and deal parties")
    keywords: list[Keyword] = Field(default_factory=list, max_length=30, description="Free keywords, Chinese or English")
    fields: list[Keyword] = Field(default_factory=list, max_length=10, description="Industry or technical fields, e.g. 新能源")
    ipc_codes: list[str] = Field(default_factory=list, max_length=30, description="IPC symbols, e.g. 'H01M 10/052'")
    ip_type: IpType = Field(description="Kind of achievement")
    trl: int = Field(ge=1, le=9, description="Technology readiness level, 1-9")
    transfer_modes: list[TransferMode] = Field(min_length=1, max_length=6, description="Transfer modes offered")
    asking_price: Money | None = Field(default=None, description="Asking price; null when only negotiable")
    negotiable: bool = Field(default=False, description="Price open to negotiation")
    region: str = Field(default="", max_length=100, description="e.g. Shanghai/Pudong; defaults to the owner's region")
    ip_records: list[IpRecord] = Field(default_factory=list, max_length=50)
    inventors: list[Inventor] = Field(default_factory=list, max_length=100)
    co_owners: list[CoOwner] = Field(default_factory=list, max_length=20, description="Empty: the owner holds 100 %")

    @field_validator("ipc_codes")
    @classmethod
    def _ipc(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for c in v:
            n = normalise_ipc(c)
            if n not in out:
                out.append(n)
        return out

    @field_validator("transfer_modes")
    @classmethod
    def _modes(cls, v: list[TransferMode]) -> list[TransferMode]:
        return list(dict.fromkeys(v))

    @field_validator("keywords", "fields")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def all_ipc_codes(self) -> list[str]:
        codes = list(self.ipc_codes)
        for r in self.ip_records:
            codes.extend(c for c in r.ipc_codes if c not in codes)
        return codes


def share_errors(co_owners: list[CoOwner], prefix: str = "co_owners") -> list[FieldError]:
    """Shares must add up to exactly 100 % and name each co-owner once."""
    errors: list[FieldError] = []
    if not co_owners:
        return errors
    total = sum(c.share_bp for c in co_owners)
    if total != SHARES_TOTAL_BP:
        errors.append(FieldError(
            field=prefix,
            message=f"co-owner shares add up to {total / 100:g} %, they must add up to 100 % (10000 basis points)",
        ))
    seen: set[str] = set()
    for i, c in enumerate(co_owners):
        key = c.org_id or c.name.casefold()
        if key in seen:
            errors.append(FieldError(field=f"{prefix}.{i}", message=f"co-owner {c.name!r} is listed twice"))
        seen.add(key)
    return errors


def content_errors(c: AchievementContent, prefix: str = "body") -> list[FieldError]:
    errors = share_errors(c.co_owners, f"{prefix}.co_owners")
    if not (c.title_zh.strip() or c.title_en.strip()):
        errors.append(FieldError(field=f"{prefix}.title_zh", message="a Chinese or an English title is required"))
    if c.asking_price is None and not c.negotiable:
        errors.append(FieldError(field=f"{prefix}.asking_price", message="give an asking price or mark the price negotiable"))
    if c.asking_price is not None and c.asking_price.amount == 0 and not c.negotiable:
        errors.append(FieldError(field=f"{prefix}.asking_price.amount", message="an asking price of zero must be marked negotiable"))
    return errors


def check_content(c: AchievementContent, prefix: str = "body") -> None:
    errors = content_errors(c, prefix)
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


def submission_errors(c: AchievementContent, prefix: str = "achievement") -> list[FieldError]:
    """What a reviewer needs before an achievement can be submitted (stricter than a draft)."""
    errors = content_errors(c, prefix)
    if not (c.abstract_zh.strip() or c.abstract_en.strip()):
        errors.append(FieldError(field=f"{prefix}.abstract_zh", message="a public teaser (abstract) is required for review"))
    if c.ip_type not in (IpType.know_how, IpType.prototype) and not c.ip_records:
        errors.append(FieldError(field=f"{prefix}.ip_records", message=f"a {c.ip_type.value} needs at least one IP record"))
    return errors


# --- organisations -------------------------------------------------------------------------

# Unified social credit code (GB 32100-2015): 18 characters, the last a check character.
_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    total = sum(_CREDIT_ALPHABET.index(ch) * w for ch, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_ALPHABET[(31 - total % 31) % 31]


def valid_credit_code(code: str) -> bool:
    code = code.upper()
    if len(code) != 18 or any(ch not in _CREDIT_ALPHABET for ch in code):
        return False
    return credit_code_check_char(code[:17]) == code[17]


class OrganisationContent(_Strict):
    name: Short = Field(description="Registered (Chinese) name")
    name_en: str = Field(default="", max_length=300, description="English name")
    kind: OrgKind
    region: str = Field(default="", max_length=100, description="e.g. Shanghai/Pudong")
    credit_code: str = Field(description="Unified social credit code (18 characters, checked)")
    headcount: int | None = Field(default=None, ge=0, le=10_000_000)
    annual_revenue: Money | None = None
    registered_on: date | None = None

    @field_validator("credit_code")
    @classmethod
    def _credit(cls, v: str) -> str:
        v = v.strip().upper()
        if not valid_credit_code(v):
            raise ValueError("not a valid unified social credit code (18 characters with a correct check character)")
        return v
