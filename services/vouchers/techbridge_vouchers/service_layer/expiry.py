"""Expiry and reminders: each voucher in its own transaction, so one failure stops nothing else."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from techbridge_shared.service import ServiceRuntime

from ..store.transact import read, transact
from . import vouchers
from .common import now

log = logging.getLogger(__name__)

BATCH = 200


async def sweep(runtime: ServiceRuntime, as_of: datetime | None = None) -> dict[str, int]:
    at = as_of or now()
    counts = {"expired": 0, "reminded": 0}
    while True:
        ids = await read(runtime, lambda repo: vouchers.due(repo, at, BATCH))
        progressed = False
        for voucher_id in ids:
            outcome = await transact(runtime, lambda repo, uow, vid=voucher_id: vouchers.sweep_one(repo, uow, vid, at))
            if outcome.body:
                counts[outcome.body] += 1
                progressed = True
        if len(ids) < BATCH or not progressed:
            return counts


async def run_periodically(runtime: ServiceRuntime, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        if not runtime.started:
            continue
        try:
            counts = await sweep(runtime)
            if any(counts.values()):
                log.info("expiry sweep: %(expired)d expired, %(reminded)d reminded", counts)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiry sweep failed; retrying at the next interval")


async def check_periodically(runtime: ServiceRuntime, interval_s: float, first_delay_s: float = 5.0) -> None:
    """Run the whole-ledger check on a schedule so the monitoring always has a fresh verdict."""
    from . import ledger
    delay = first_delay_s
    while True:
        await asyncio.sleep(delay)
        delay = interval_s
        if not runtime.started:
            delay = first_delay_s
            continue
        try:
            report = await read(runtime, lambda repo: ledger.check(repo))
            if not report.ok:
                log.error("ledger check FAILED: %d problems, first: %s", len(report.problems), report.problems[0])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ledger check could not run; retrying at the next interval")
