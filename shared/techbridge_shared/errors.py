"""RFC 9457 problem+json for every error a Techbridge process returns.

Domain code raises `Problem` subclasses (or the FastAPI/validation errors happen on their own);
`install_problem_handlers` turns all of them, and anything unexpected, into one shape:
`{type, title, status, detail, instance, code, errors[{field, message}]}`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from asyncpg import exceptions as pg_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://techbridge.example/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. body.price.amount")
    message: str = Field(description="Why the value was refused")


class ProblemDetails(BaseModel):
    type: str = Field(description="URI naming the kind of problem")
    title: str = Field(description="Short, human-readable summary of the kind of problem")
    status: int = Field(description="HTTP status code")
    detail: str | None = Field(default=None, description="What went wrong in this occurrence")
    instance: str | None = Field(default=None, description="The request path that failed")
    code: str = Field(description="Stable machine-readable code, e.g. validation_failed")
    errors: list[FieldError] = Field(default_factory=list, description="Per-field problems")


class Problem(Exception):
    """An error the client can act on. Subclass per kind, or raise with a specific code."""

    status: int = 400
    code: str = "bad_request"
    title: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.errors = errors or []
        self.headers = headers


class NotFound(Problem):
    status, code = 404, "not_found"


class Conflict(Problem):
    status, code = 409, "conflict"


class Forbidden(Problem):
    status, code = 403, "forbidden"


class Unauthorized(Problem):
    status, code = 401, "unauthorized"


class ValidationFailed(Problem):
    status, code = 422, "validation_failed"


# How long a client should wait before retrying when the database cannot be reached.
DATABASE_RETRY_AFTER_S = 2


# FastAPI's HTTPException detail when a request body cannot be read as JSON at all.
UNPARSEABLE_BODY = "There was an error parsing the body"


# asyncpg's errors for a statement on a connection the server had already closed (checked
# before sending) and for a pool closing as the process stops.
_CLOSED_MESSAGES = frozenset({"connection is closed", "pool is closing", "pool is closed"})
_UNREACHABLE = (
    sa_exc.DisconnectionError, sa_exc.TimeoutError, ConnectionError,
    pg_exc.PostgresConnectionError, pg_exc.OperatorInterventionError,
    pg_exc.ConnectionDoesNotExistError, pg_exc.TooManyConnectionsError,
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what caused it: the driver's error a SQLAlchemy error wraps (`orig`), else the
    exception it was raised from or while handling, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) and id(orig) not in seen else (
            current.__cause__ or current.__context__)


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database could not be reached or dropped the
    connection (server restarting, shutting down, refusing connections, pool exhausted): a
    transient condition the client may retry, not a defect of the request or of the code."""
    return any(
        (isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated) or isinstance(e, _UNREACHABLE)
        or (isinstance(e, pg_exc.InterfaceError) and str(e) in _CLOSED_MESSAGES)
        for e in _causes(exc))


# serialization_failure, deadlock_detected: PostgreSQL aborted one of two concurrent transactions.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})


def is_concurrent_conflict(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is PostgreSQL aborting this transaction because of a
    concurrent one (serialisation failure, deadlock): nothing was applied and the same request
    may simply be tried again."""
    return any((getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)) in CONFLICT_SQLSTATES
               for e in _causes(exc))


def problem_response(
    request: Request,
    status: int,
    *,
    code: str,
    detail: str | None = None,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=PROBLEM_TYPE_BASE + code.replace("_", "-"),
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(
            request, exc.status, code=exc.code, detail=exc.detail, title=exc.title,
            errors=exc.errors, headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [FieldError(field=_field_path(e["loc"]), message=e["msg"]) for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
        return problem_response(
            request, 422, code="validation_failed", title="Request validation failed",
            detail=detail, errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == UNPARSEABLE_BODY:
            # FastAPI's answer to a body it cannot decode at all (not UTF-8, cut short): as
            # with malformed JSON, the field at fault is the body.
            message = "is not a complete, UTF-8 encoded JSON document"
            return problem_response(
                request, 422, code="validation_failed", title="Request validation failed",
                detail=f"body: {message}", errors=[FieldError(field="body", message=message)],
            )
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        return problem_response(
            request, exc.status_code, code=code, detail=str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    # Starlette answers with the handler registered for Exception outside every middleware of
    # the app (and then re-raises to the server): that answer has no X-Request-ID, and the access
    # log and metrics count it as a 500. The errors of the store and the network, the ones that
    # may become 503s, are answered inside, by the same handler.
    for kind in (OSError, sa_exc.SQLAlchemyError, pg_exc.PostgresError, pg_exc.InterfaceError):
        app.add_exception_handler(kind, _unexpected)
    app.add_exception_handler(Exception, _unexpected)


async def _unexpected(request: Request, exc: Exception):
    """Any error no other handler answered: a retryable 503 when the database is out of reach or
    a concurrent transaction won, else a 500 that says nothing of the internals (logged here)."""
    if is_database_unavailable(exc):
        # Nothing was applied that a retry could duplicate: the transaction rolled back
        # (or, if the connection dropped during COMMIT, a retry with the same
        # Idempotency-Key answers with the stored outcome).
        log.warning("database unavailable: %s", f"{type(exc).__name__}: {exc}".splitlines()[0])
        return problem_response(
            request, 503, code="database_unavailable", title="Service Unavailable",
            detail="The service cannot reach its database at the moment; retry later.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    if is_concurrent_conflict(exc):
        # The database rolled this transaction back in favour of a concurrent one.
        log.warning("concurrent transaction conflict: %s", f"{type(exc).__name__}: {exc}".splitlines()[0])
        return problem_response(
            request, 503, code="concurrent_update", title="Service Unavailable",
            detail="A concurrent change got in the way and nothing was applied; retry the request.",
            headers={"Retry-After": "1"},
        )
    log.exception("unhandled error")
    return problem_response(
        request, 500, code="internal_error", detail="An unexpected error occurred; it has been logged."
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry declaring problem+json bodies for the given statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "model": ProblemDetails,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        }
        for status in statuses
    }
