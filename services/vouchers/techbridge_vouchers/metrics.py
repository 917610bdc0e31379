"""Vouchers' own Prometheus series: the ledger check's verdict (alerts fire on 0 or absence)."""

from __future__ import annotations

import time

from prometheus_client import Gauge

from .domain.ledger import LedgerReport

LEDGER_CHECK_OK = Gauge("techbridge_ledger_check_ok", "1 if the last ledger check passed, 0 if not", ["service"])
LEDGER_CHECK_PROBLEMS = Gauge("techbridge_ledger_check_problems", "Problems the last ledger check found", ["service"])
LEDGER_CHECK_ENTRIES = Gauge("techbridge_ledger_check_entries", "Journal entries the last check replayed",
                             ["service"])
LEDGER_CHECK_TIME = Gauge("techbridge_ledger_check_timestamp_seconds", "When the last ledger check ran", ["service"])


def observe(report: LedgerReport, *, programme_scoped: bool = False) -> None:
    """Record a whole-ledger check (a programme-scoped one is not the whole truth: only failures count)."""
    if programme_scoped and report.ok:
        return
    LEDGER_CHECK_OK.labels("vouchers").set(1 if report.ok else 0)
    LEDGER_CHECK_PROBLEMS.labels("vouchers").set(len(report.problems))
    if not programme_scoped:
        LEDGER_CHECK_ENTRIES.labels("vouchers").set(report.entries_checked)
    LEDGER_CHECK_TIME.labels("vouchers").set(time.time())
