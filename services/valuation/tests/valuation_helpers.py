"""Builders shared by the valuation tests."""

from __future__ import annotations

from datetime import date

from techbridge_valuation.domain.subject import IpRecord, Subject, Transfer

TODAY = date(2026, 11, 26)
TEXTBOOK_REVENUES = [100_000_000, 110_000_000, 120_000_000, 130_000_000, 140_000_000]  # CNY 1.0 m ... 1.4 m in fen


def subject(trl: int = 6, ipc=("H01M 10/052",), fields=("energy storage",), filed: date = date(2020, 1, 1),
            ip_type: str = "invention_patent", **kw) -> Subject:
    return Subject(
        achievement_id=kw.pop("achievement_id", "ach-1"), owner_org_id=kw.pop("owner_org_id", "org-owner"),
        title_zh="高能量密度锂电池隔膜", title_en="High energy-density lithium battery separator",
        ipc_codes=tuple(ipc), fields=tuple(fields), ip_type=ip_type, trl=trl,
        ip_records=kw.pop("ip_records", None) or ((IpRecord(
            number="CN2020100001.0", kind="invention", filing_date=filed, grant_date=date(2022, 3, 1),
            legal_status="valid"),) if filed else ()),
        **kw,
    )


def transfer(i: int, price: int | None, *, ipc=("H01M 4/00",), fields=(), trl: int | None = 6,
             mode: str = "assignment", exclusive: bool = True, territory: str = "CN", bp: int | None = None) -> Transfer:
    return Transfer(
        transfer_id=f"tr-{i}", achievement_ids=(f"other-{i}",), seller_org_id="org-s", buyer_org_id=f"org-b{i}",
        mode=mode, exclusive=exclusive, territory=territory, term_months=60, price=price, currency="CNY",
        royalty_rate_bp=bp, ipc_codes=tuple(ipc), fields=tuple(fields), trl=trl,
        completed_at=f"2026-0{1 + i % 9}-01T00:00:00Z",
    )
