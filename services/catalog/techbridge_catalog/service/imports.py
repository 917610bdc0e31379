"""Bulk import of achievements from JSON lines or CSV, with a report per row.

Each row carries the same fields as the create API. Atomic by default: one bad row and nothing
is stored (the report says which rows and why). With best-effort the good rows are stored and
the bad ones reported. Rows become drafts of the caller's organisation, or are submitted for
review at once when asked.

Every row is validated in a worker thread before any transaction opens (a bad row in an atomic
import costs no transaction). The accepted rows are then mapped for the store (content as JSON,
search tokens, history changes, events) and written in steps of PIPELINE_ROWS (on SQLite; on
PostgreSQL the first step, then the rest at once, see POSTGRES_STEP_ROWS): while one step
is written, the next is mapped in a worker thread, so the store's own work overlaps the Python
work instead of following it.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from techbridge_shared.envelope import CloudEvent
from techbridge_shared.errors import Conflict, FieldError, Forbidden
from techbridge_shared.uow import UnitOfWork

from ..domain.achievement import Achievement
from ..domain.history import diff
from ..domain.model import Status
from ..domain.rules import AchievementContent, content_errors, submission_errors
from ..store.checkpoint import Checkpointer
from ..store.repository import Achievements, History, NewRow, Organisations, encode_json, new_row, sqlite_parameters
from .achievements import fact_event
from .common import Actor, now

MAX_ROWS = 10_000
LIST_FIELDS = ("keywords", "fields", "ipc_codes", "transfer_modes")
JSON_FIELDS = ("ip_records", "inventors", "co_owners", "asking_price")


@dataclass
class RowReport:
    row: int
    achievement_id: str | None = None
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class ImportReport:
    mode: str
    total: int = 0
    imported: int = 0
    rejected: int = 0
    rows: list[RowReport] = field(default_factory=list)


class ImportFormatError(ValueError):
    pass


@dataclass(frozen=True)
class JsonLine:
    """One line of a JSON lines body, parsed and validated in one step by the content model."""

    text: str


def parse_jsonl(raw: str) -> list[tuple[int, Any]]:
    return [(n, JsonLine(line)) for n, line in enumerate(raw.splitlines(), start=1) if line.strip()]


def _csv_value(name: str, value: str) -> Any:
    value = value.strip()
    if name in LIST_FIELDS:
        return [v.strip() for v in value.split(";") if v.strip()]
    if name in JSON_FIELDS:
        return json.loads(value) if value else ([] if name != "asking_price" else None)
    if name == "negotiable":
        return value.lower() in ("true", "1", "yes", "y")
    return value


def parse_csv(raw: str) -> list[tuple[int, Any]]:
    """Header row of field names; lists separated by ';'; ip_records/inventors/co_owners as JSON;
    the price as asking_price_amount (minor units) and asking_price_currency."""
    reader = csv.DictReader(io.StringIO(raw))
    rows = []
    for n, rec in enumerate(reader, start=2):
        try:
            if None in rec:
                raise ImportFormatError("row has more cells than the header")
            out: dict[str, Any] = {}
            amount = (rec.pop("asking_price_amount", "") or "").strip()
            currency = (rec.pop("asking_price_currency", "") or "").strip() or "CNY"
            for k, v in rec.items():
                if v is None or (v.strip() == "" and k not in LIST_FIELDS):
                    continue
                out[k] = _csv_value(k, v)
            if amount:
                out["asking_price"] = {"amount": int(amount), "currency": currency}
            rows.append((n, out))
        except (ValueError, ImportFormatError) as exc:
            rows.append((n, ImportFormatError(f"row cannot be read: {exc}")))
    return rows


def _errors(payload: Any, submit: bool) -> tuple[AchievementContent | None, list[FieldError]]:
    if isinstance(payload, ImportFormatError):
        return None, [FieldError(field="row", message=str(payload))]
    if not isinstance(payload, dict | JsonLine):
        return None, [FieldError(field="row", message="row is not an object")]
    try:
        if isinstance(payload, JsonLine):
            # pydantic parses the JSON itself (no intermediate dicts): most of a row's reading time.
            content = AchievementContent.model_validate_json(payload.text)
        else:
            content = AchievementContent.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            return None, [FieldError(field="row", message=f"line is not JSON: {errors[0]['ctx'].get('error', '')}")]
        if errors and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
            return None, [FieldError(field="row", message="row is not an object")]
        return None, [FieldError(field=".".join(str(p) for p in e["loc"]) or "row", message=e["msg"]) for e in errors]
    errs = (submission_errors if submit else content_errors)(content, prefix="row")
    return content, [FieldError(field=e.field.removeprefix("row."), message=e.message) for e in errs]


@dataclass
class Mapped:
    """One stretch of accepted rows as the store writes them: rows with their search tokens, the
    history's field changes (JSON text), and the submission events."""

    achievements: list[Achievement]
    rows: list[NewRow]
    changes: list[str]
    events: list[CloudEvent]


@dataclass
class Prepared:
    """What an import will write: every row validated before any transaction is opened, the first
    stretch of rows already mapped for the store."""

    report: ImportReport
    achievements: list[Achievement] = field(default_factory=list)
    first: Mapped | None = None


def check_rows(rows: list[tuple[int, Any]], owner_org_id: str, owner_region: str, *, best_effort: bool,
               submit: bool, at: datetime) -> Prepared:
    """Validate every row (pure CPU, no store): the report, and the achievements to create."""
    report = ImportReport(mode="best_effort" if best_effort else "atomic", total=len(rows))
    out = Prepared(report)
    for n, payload in rows:
        content, errors = _errors(payload, submit)
        if errors or content is None:
            report.rows.append(RowReport(row=n, errors=errors))
            report.rejected += 1
            continue
        if not content.region and owner_region:
            content = content.model_copy(update={"region": owner_region})
        a = Achievement(
            id=str(uuid.uuid4()), owner_org_id=owner_org_id, status=Status.submitted if submit else Status.draft,
            version=1, content=content, created_at=at, updated_at=at, listed_at=at, submitted_at=at if submit else None,
        )
        out.achievements.append(a)
        report.rows.append(RowReport(row=n, achievement_id=a.id))
    if report.rejected and not best_effort:
        for r in report.rows:
            r.achievement_id = None
        out.achievements = []
    return out


def map_rows(achievements: list[Achievement], sqlite: bool = False) -> Mapped:
    """The store's rows and search tokens, the history's changes and the events of some accepted
    achievements (pure CPU; the segmentation of their text is most of it). The content is
    dumped once, for the row and the history, and both are encoded as JSON text here, in the
    worker thread, rather than by the driver layer in the event loop while it writes; for
    SQLite the rows' driver parameters are made here too."""
    contents = [a.content.model_dump(mode="json") for a in achievements]
    rows = [new_row(a, c) for a, c in zip(achievements, contents, strict=True)]
    if sqlite:
        sqlite_parameters(rows)
    return Mapped(
        achievements=achievements,
        rows=rows,
        changes=[encode_json(diff(None, c)) for c in contents],
        events=[fact_event(a, "submitted") for a in achievements if a.status == Status.submitted],
    )


# Rows mapped and written per step. The first step is mapped with the validation; the rows of
# one step are written while the next step's rows are mapped in a worker thread, so SQLite's
# engine (which runs without the GIL) works while Python maps. On PostgreSQL, smaller
# statements cost more than the overlap gained (its statement triggers run once per statement,
# and the event loop encoding a step's parameters competes with the mapping for the GIL):
# measured at 10,000 rows, steps of 250 took ~15 % more CPU in the service and the server and
# imported slower, so everything after the first step is one step there.
PIPELINE_ROWS = 250
POSTGRES_STEP_ROWS = MAX_ROWS


def _steps(achievements: list[Achievement], rest: int | None = None) -> list[list[Achievement]]:
    """The first PIPELINE_ROWS rows, then steps of `rest` rows (PIPELINE_ROWS unless given)."""
    first = PIPELINE_ROWS
    rest = rest or PIPELINE_ROWS
    return [achievements[:first]] + [achievements[i: i + rest] for i in range(first, len(achievements), rest)]


# The cyclic garbage collector is paused while an import validates, maps and writes its rows.
# An import keeps thousands of small objects alive until it commits (models, rows, events,
# report entries), so they survive the young collections and, past a quarter of the process's
# long-lived objects, set off a full collection that walks every object of the process (the
# application's, tens of thousands of listings' search columns' owners, ...): measured with
# gc.callbacks at 90,000 -> 100,000 rows, 68 us of CPU per imported row (13 % of the import),
# one full collection per 2,000-row request. Objects freed by reference counting (nearly all)
# are freed as ever; only reference cycles wait for the collector, which runs again as soon as
# the last import in the process ends. A collector someone else switched off stays off.
_pause = threading.Lock()
_paused = 0
_resume = False


@contextlib.contextmanager
def collector_paused():
    global _paused, _resume
    with _pause:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pause:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


async def owner_of(session, actor: Actor) -> dict:
    if not actor.org:
        raise Forbidden("your identity names no organisation; imported achievements need an owner")
    org = await Organisations(session).get(actor.org)
    if org is None:
        raise Conflict(f"organisation {actor.org} is not registered", code="organisation_not_registered")
    return org


# SQLite: how long an import waits, after validating its rows and before its transaction, for a
# background WAL checkpoint still running (the previous import's), so that its transaction
# starts the WAL afresh instead of appending to it (store/checkpoint.py).
SETTLE_S = 1.0


async def prepare(org: dict, rows: list[tuple[int, Any]], *, best_effort: bool, submit: bool) -> Prepared:
    """Validate every row, and map the first step of them, in a worker thread: the event loop
    keeps answering other requests, and a bad row in an atomic import is found before any
    transaction opens. Then wait for a WAL checkpoint still running (SETTLE_S)."""
    def work() -> Prepared:
        with collector_paused():
            p = check_rows(rows, org["id"], org["region"], best_effort=best_effort, submit=submit, at=now())
            if p.achievements:
                p.first = map_rows(_steps(p.achievements)[0])
                Checkpointer.settle(SETTLE_S)
            return p

    return await asyncio.to_thread(work)


async def store(uow: UnitOfWork, actor: Actor, prepared: Prepared) -> ImportReport:
    """Write the prepared achievements, their history and (when submitted) their events in the
    caller's unit of work: all of them or, if it does not commit, none. Each step's rows are
    written while the next step's are mapped in a worker thread. The caller pauses the
    collector (`collector_paused`) through this, its commit and its report."""
    good = prepared.achievements
    if not good:
        return prepared.report
    sqlite = uow.session.bind.dialect.name == "sqlite"
    steps = _steps(good, None if sqlite else POSTGRES_STEP_ROWS)
    await Achievements(uow.session).tune_for_import()
    mapped = prepared.first if prepared.first is not None else await asyncio.to_thread(map_rows, steps[0], sqlite)
    if sqlite and mapped.rows[0].sqlite is None:  # (the first step is mapped before the store is known)
        await asyncio.to_thread(sqlite_parameters, mapped.rows)
    following: asyncio.Future[Mapped] | None = None
    try:
        for i in range(len(steps)):
            following = asyncio.ensure_future(asyncio.to_thread(map_rows, steps[i + 1], sqlite)) \
                if i + 1 < len(steps) else None
            await _write(uow, actor, mapped)
            if following is not None:
                mapped = await following
                following = None
    finally:
        if following is not None:  # a write failed: let the mapping in flight finish, then drop it
            with contextlib.suppress(Exception):
                await following
    prepared.report.imported = len(good)
    return prepared.report


async def _write(uow: UnitOfWork, actor: Actor, mapped: Mapped) -> None:
    await Achievements(uow.session).insert(mapped.rows)
    await History(uow.session).add_encoded([
        {"aggregate": "achievement", "aggregate_id": a.id, "at": a.created_at, "actor": actor.sub,
         "actor_org": actor.org, "action": "import", "from_status": None, "to_status": a.status.value,
         "reason": None, "changes": changes}
        for a, changes in zip(mapped.achievements, mapped.changes, strict=True)
    ])
    for event in mapped.events:
        uow.publish(event)
