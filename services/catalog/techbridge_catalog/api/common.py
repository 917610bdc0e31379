"""Helpers every catalog route uses: ETags, If-Match, the runtime's settings."""

from __future__ import annotations

import re

from fastapi import Header, Request

from techbridge_shared.errors import FieldError, ValidationFailed

from ..store.reader import Reader

_ETAG_RE = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def etag(version: int) -> str:
    return f'"{version}"'


async def if_match(
    if_match: str | None = Header(default=None, alias="If-Match",
                                  description='ETag of the version being changed, e.g. "3"'),
) -> int | None:
    if if_match is None:
        return None
    m = _ETAG_RE.match(if_match)
    if not m:
        raise ValidationFailed("If-Match must be an ETag this API issued, such as \"3\"",
                               errors=[FieldError(field="header.If-Match", message="not an ETag of this API")])
    return int(m.group(1))


def settings_of(request: Request):
    return request.app.state.runtime.settings


def reader_for(request: Request) -> Reader:
    """Read-only sessions for queries (made on first use; see store/reader.py)."""
    found = getattr(request.app.state, "catalog_reader", None)
    if found is None:
        found = request.app.state.catalog_reader = Reader(request.app.state.runtime.db)
    return found


async def reader_of(request: Request) -> Reader:
    """FastAPI dependency: `reader_for` (a coroutine: FastAPI runs plain function dependencies in a
    worker thread)."""
    return reader_for(request)
