"""The versioned defaults table and the scorecard indicators, as the valuations use them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends

from techbridge_shared.errors import NotFound, problem_responses
from techbridge_shared.identity import require_identity

from ..domain.defaults import CURRENT, TABLES
from ..domain.scorecard import CATEGORIES, INDICATORS

router = APIRouter(prefix="/api/v1/valuation/defaults", tags=["defaults"], dependencies=[Depends(require_identity)],
                   responses=problem_responses(401))


def _table(version: str) -> dict[str, Any]:
    t = TABLES[version]
    body = asdict(t)
    body["current"] = version == CURRENT.version
    body["scorecard"] = {
        "categories": CATEGORIES,
        "indicators": [{"id": k, "category": c, "label": label, "scale": scale}
                       for k, (c, label, scale) in INDICATORS.items()],
    }
    return body


@router.get("", summary="The current defaults table, with the source of every figure")
async def current() -> dict[str, Any]:
    return _table(CURRENT.version)


@router.get("/versions", summary="Every defaults table version kept for reproducing old valuations")
async def versions() -> list[str]:
    return sorted(TABLES)


@router.get("/{version}", summary="One defaults table version", responses=problem_responses(404))
async def one(version: str) -> dict[str, Any]:
    if version not in TABLES:
        raise NotFound(f"defaults table {version} does not exist; see /api/v1/valuation/defaults/versions")
    return _table(version)
