"""The delivery worker: sends due webhook deliveries, signed, and records every attempt.

Order: a delivery goes out only when no earlier delivery of the same aggregate to the same
subscription is still pending, so a receiver sees each aggregate's events in order (a parked
delivery no longer holds the others back). Failures are retried with exponential backoff and
parked after `webhook_max_attempts`. Claiming a delivery moves its due time past a lease, so
several gateway replicas never send the same attempt twice and a crash only delays it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import httpx

from ..domain.webhooks import (
    ATTEMPT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, CallbackRefused, backoff_s, sign,
)
from ..service.auth import now_utc
from ..service.context import GatewayContext
from ..service.subscriptions import check_callback
from ..store import repositories as repo

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)


class DeliveryWorker:
    def __init__(self, ctx: GatewayContext):
        self.ctx = ctx
        s = ctx.settings
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(s.webhook_timeout_s, connect=min(5.0, s.webhook_timeout_s)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=s.webhook_concurrency * 2, max_keepalive_connections=s.webhook_concurrency),
            headers={"user-agent": "techbridge-webhooks/1"},
        )
        self._task: asyncio.Task | None = None
        self._recorder: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._results: asyncio.Queue = asyncio.Queue()
        self.delivered = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gateway-webhooks")
        self._recorder = asyncio.create_task(self._record_loop(), name="gateway-webhook-log")

    async def stop(self) -> None:
        for task in (self._task, self._recorder):
            if task:
                task.cancel()
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*(t for t in (self._task, self._recorder, *self._inflight) if t), return_exceptions=True)
        await self.http.aclose()

    async def _loop(self) -> None:
        next_prune = 0.0
        while True:
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 600
                await self.prune()
            try:
                started = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery round failed")
                started = 0
            if not started:
                await self.ctx.wait_events(self.ctx.settings.webhook_poll_interval_s)

    async def prune(self) -> None:
        cutoff = now_utc() - timedelta(days=self.ctx.settings.event_retention_days)
        try:
            async with self.ctx.uow() as uow:
                removed = await repo.prune_received_before(uow.session, cutoff)
                await uow.commit()
            if removed:
                log.info("forgot %d events older than %s", removed, cutoff.isoformat())
        except Exception:
            log.warning("pruning the event log failed", exc_info=True)

    async def run_once(self) -> int:
        """Claim what is due (up to the free delivery slots) and start sending it."""
        room = self.ctx.settings.webhook_concurrency - len(self._inflight)
        if room <= 0:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        now = now_utc()
        async with self.ctx.uow() as uow:
            due = await repo.due_deliveries(uow.session, now, room)
            won = set(await repo.claim_due(uow.session, [d["delivery_id"] for d in due], now, now + LEASE))
            claimed = [d for d in due if d["delivery_id"] in won]
            subs = await repo.subscriptions_by_id(uow.session, {d["subscription_id"] for d in claimed})
            events = await repo.events_by_seq(uow.session, {d["event_seq"] for d in claimed})
            await uow.commit()
        for d in claimed:
            task = asyncio.create_task(self._deliver(d, subs[d["subscription_id"]], events[d["event_seq"]]))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(claimed)

    async def _deliver(self, delivery: dict, sub: dict, event: dict) -> None:
        attempt = delivery["attempts"] + 1
        body = event["payload"].encode()
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            await check_callback(self.ctx, sub["callback_url"])
            timestamp = int(time.time())
            response = await self.http.post(sub["callback_url"], content=body, headers={
                "content-type": "application/cloudevents+json; charset=utf-8",
                SIGNATURE_HEADER: sign(sub["secret"], timestamp, body),
                DELIVERY_HEADER: delivery["delivery_id"],
                ATTEMPT_HEADER: str(attempt),
            })
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"receiver answered {status_code}"
        except CallbackRefused as exc:
            error = f"callback refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # never lose the attempt: it is logged like any failure
            log.exception("delivery %s failed unexpectedly", delivery["delivery_id"])
            error = f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = int((time.perf_counter() - started) * 1000)
        self._results.put_nowait((delivery, attempt, status_code, error, duration_ms))

    async def _record_loop(self) -> None:
        """Writes finished attempts in batches; a failed write leaves them due again after the lease."""
        while True:
            batch = [await self._results.get()]
            while not self._results.empty() and len(batch) < 500:
                batch.append(self._results.get_nowait())
            try:
                await self._record(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not record %d delivery attempts", len(batch))
            self.ctx.notify_events()  # the next delivery of the same aggregate may go now

    async def _record(self, results) -> None:
        """One transaction for the whole round: the attempt log and each delivery's new state."""
        s = self.ctx.settings
        now = now_utc()
        async with self.ctx.uow() as uow:
            for delivery, attempt, status_code, error, duration_ms in results:
                if error is None:
                    values = {"status": "delivered", "delivered_at": now, "last_error": None}
                    self.delivered += 1
                elif attempt >= s.webhook_max_attempts:
                    values = {"status": "parked", "last_error": error}
                else:
                    delay = backoff_s(attempt, s.webhook_backoff_base_s, s.webhook_backoff_max_s)
                    values = {"status": "pending", "next_attempt_at": now + timedelta(seconds=delay),
                              "last_error": error}
                await repo.insert_attempt(uow.session, delivery_id=delivery["delivery_id"], attempt=attempt,
                                          at=now, status_code=status_code, error=error, duration_ms=duration_ms)
                await repo.update_delivery(uow.session, delivery["delivery_id"], attempts=attempt,
                                           last_status_code=status_code, **values)
            await uow.commit()
