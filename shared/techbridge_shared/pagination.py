"""Cursor pagination: `?limit=` (1..100) and an opaque `cursor`; responses `{items, next_cursor}`.

The cursor is the sort key of the last item returned, base64url-encoded JSON, so a client
cannot rely on its inside and the server can change the ordering key later.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from .errors import FieldError, ValidationFailed

T = TypeVar("T")

MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="This page of results")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page"
    )


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, dict):
            raise ValueError
        return value
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "cursor is not one this API issued",
            errors=[FieldError(field="query.cursor", message="malformed or foreign cursor")],
        ) from None


class PageParams(BaseModel):
    limit: int
    cursor: dict[str, Any] | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (max 100)")] = 20,
    cursor: Annotated[str | None, Query(description="Opaque cursor from a previous page")] = None,
) -> PageParams:
    """FastAPI dependency: `params: PageParams = Depends(page_params)` (a coroutine: FastAPI runs
    plain function dependencies in a worker thread)."""
    return PageParams(limit=limit, cursor=decode_cursor(cursor))


def paginate(rows: list[T], limit: int, key) -> Page[T]:
    """Given up to limit+1 rows in order, return a page and the cursor after its last row."""
    has_more = len(rows) > limit
    items = rows[:limit]
    next_cursor = encode_cursor(key(items[-1])) if has_more and items else None
    return Page[Any](items=items, next_cursor=next_cursor)
