"""Vocabulary shared by demands, matching and deals."""

from __future__ import annotations

from enum import StrEnum


class TransferMode(StrEnum):
    assignment = "assignment"
    exclusive_licence = "exclusive_licence"
    non_exclusive_licence = "non_exclusive_licence"
    equity = "equity"
    co_development = "co_development"
    technical_service = "technical_service"


class DeclineReason(StrEnum):
    """Why an enterprise turned a suggested match down; each one changes its ranking."""

    not_relevant = "not_relevant"
    trl_too_low = "trl_too_low"
    price = "price"
    ip_status = "ip_status"
    timing = "timing"
    already_solved = "already_solved"
    region = "region"
    other = "other"


# Amounts above this (minor units: 10^14 fen = 1 trillion CNY) are refused as absurd.
MAX_AMOUNT = 10**14


def region_matches(wanted: str | None, offered: str | None) -> bool | None:
    """Same top-level region ("Shanghai/Pudong" fits "Shanghai"); None if either is unknown."""
    if not wanted or not offered:
        return None
    w = [p.strip().lower() for p in wanted.split("/") if p.strip()]
    o = [p.strip().lower() for p in offered.split("/") if p.strip()]
    if not w or not o:
        return None
    return o[: len(w)] == w or w[: len(o)] == o
