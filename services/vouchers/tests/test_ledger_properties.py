"""Property tests: random sequences of voucher operations never break the ledger's invariants.

Run with `--hypothesis-seed=<n>` to reproduce a run; a failing case is also printed as a
`@reproduce_failure` blob and stored in Hypothesis' example database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from techbridge_shared.errors import Problem
from techbridge_vouchers.domain import model as m
from techbridge_vouchers.domain.ledger import (
    GENESIS,
    AccountKind,
    EntryKind,
    InsufficientBalance,
    JournalEntry,
    Ledger,
    Posting,
    StoredAccount,
    StoredEntry,
    UnbalancedEntry,
    agency_account,
    check_ledger,
    entry_hash,
    hash_fields,
    programme_account,
    voucher_account,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CURRENCY = "CNY"
#: Government organisations: each programme is owned by one; every official command is made by a
#: drawn one, and only the owner's are let through (the others are refused and change nothing).
OFFICIALS = ("gov-1", "gov-2")
#: Entries only an official of the programme's owner makes (the journal's created_by is the org here).
OWNER_ENTRIES = {EntryKind.OPEN, EntryKind.TOP_UP, EntryKind.ISSUE, EntryKind.PAYOUT, EntryKind.CLAWBACK,
                 EntryKind.REVOKE}


def terms(policy: m.UnspentPolicy = m.UnspentPolicy.LAPSE) -> m.ProgrammeTerms:
    return m.ProgrammeTerms(
        name="p", currency=CURRENCY, face_values=(100, 250, 1000), max_share_bp=5000, annual_quota=10_000,
        categories=("testing", "ip"), eligibility=m.EligibilityRules(), applications_open_at=T0,
        applications_close_at=T0 + timedelta(days=365), validity_days=30, unspent_policy=policy, reminder_days=7,
        review_levels=1,
    )


def stored(ledger: Ledger) -> tuple[list[StoredEntry], list[StoredAccount]]:
    entries, prev = [], {}
    for i, e in enumerate(ledger.entries):
        p = prev.get(e.chain_key, GENESIS)
        h = ledger.hashes[e.id]
        entries.append(StoredEntry(i + 1, hash_fields(e), tuple((x.account.id, x.amount) for x in e.postings), p, h))
        prev[e.chain_key] = h
    accounts = [StoredAccount(a.id, a.kind, a.programme_id, a.owner_id, CURRENCY, ledger.balance(a))
                for a in ledger.accounts.values()]
    return entries, accounts


class VoucherBook(RuleBasedStateMachine):
    """The domain's decisions applied to the reference ledger, as the service applies them to its store."""

    def __init__(self):
        super().__init__()
        self.ledger = Ledger()
        self.now = T0
        self.programmes: dict[str, m.Programme] = {}
        self.vouchers: dict[str, m.Voucher] = {}
        self.redemptions: dict[str, m.Redemption] = {}
        self.settle_entries: dict[str, str] = {}
        self.counter = 0
        self.enrolment = lambda p: m.Enrolment(p, "agency-1", ("testing", "ip"), m.EnrolmentState.APPROVED, T0, T0)

    # --- helpers
    def next_id(self, prefix: str) -> str:
        # Deterministic ids: Hypothesis replays a case only if choices do not depend on randomness.
        self.counter += 1
        return f"{prefix}-{self.counter:05d}"

    def apply(self, entry: JournalEntry | None) -> None:
        if entry is not None:
            self.ledger.apply(entry)

    def attempt(self, fn):
        """Run a command; a refusal (problem) must leave the ledger unchanged."""
        before = (len(self.ledger.entries), dict(self.ledger.balances))
        try:
            fn()
        except (Problem, InsufficientBalance):
            assert (len(self.ledger.entries), dict(self.ledger.balances)) == before

    @staticmethod
    def official(data, p: m.Programme) -> str:
        """A drawn government organisation acting on `p`, once the domain has let it (else Forbidden)."""
        org = data.draw(st.sampled_from(OFFICIALS))
        m.authorise_governing(p, org=org, admin=False, action=m.Governing.MANAGE)
        return org

    def pick(self, d: dict, data, pred=lambda x: True):
        items = sorted(k for k, v in d.items() if pred(v))
        return data.draw(st.sampled_from(items)) if items else None

    # --- rules
    @rule(budget=st.integers(1, 5000), lapse=st.booleans(), owner=st.sampled_from(OFFICIALS))
    def open(self, budget, lapse, owner):
        policy = m.UnspentPolicy.LAPSE if lapse else m.UnspentPolicy.RETURN_TO_BUDGET
        p, entry = m.open_programme(self.next_id("p"), terms(policy), budget, now=self.now, actor=owner,
                                    owner_org_id=owner)
        self.apply(entry)
        self.programmes[p.id] = p

    @precondition(lambda self: self.programmes)
    @rule(data=st.data(), amount=st.integers(1, 3000))
    def top_up(self, data, amount):
        pid = self.pick(self.programmes, data)
        p = self.programmes[pid]
        self.attempt(lambda: self.apply(m.top_up(p, amount, now=self.now, actor=self.official(data, p))))

    @precondition(lambda self: self.programmes)
    @rule(data=st.data(), face=st.sampled_from([100, 250, 1000]))
    def issue(self, data, face):
        pid = self.pick(self.programmes, data)
        p = self.programmes[pid]
        app = m.Application(self.next_id("a"), pid, "ent-1", face, CURRENCY, "", m.ApplicationState.APPROVED, [], "e", self.now)

        def go():
            reviewer = data.draw(st.sampled_from(OFFICIALS))
            m.authorise_governing(p, org=reviewer, admin=False, action=m.Governing.REVIEW, review_level=1)
            unissued = self.ledger.balance(programme_account(pid, AccountKind.UNISSUED))
            v, entry = m.issue_voucher(p, app, unissued=unissued, issued_this_year=0, now=self.now, actor=reviewer,
                                          voucher_id=self.next_id("v"))
            self.apply(entry)
            self.vouchers[v.id] = v
        self.attempt(go)

    @precondition(lambda self: self.vouchers)
    @rule(data=st.data(), amount=st.integers(1, 600), invoice=st.integers(1, 2000))
    def reserve(self, data, amount, invoice):
        vid = self.pick(self.vouchers, data)
        v = self.vouchers[vid]
        p = self.programmes[v.programme_id]
        req = m.RedemptionRequest(vid, v.enterprise_org_id, amount, CURRENCY, invoice, "inv", "testing")

        def go():
            available = self.ledger.balance(voucher_account(p.id, vid, AccountKind.AVAILABLE))
            # The store is the last guard: a domain that let too much through would fail in apply().
            r, entry = m.reserve(v, p, self.enrolment(p.id), req, available=available, invoice_already_covered=0,
                                 now=self.now, actor="agency", agency_org_id="agency-1",
                                 redemption_id=self.next_id("r"))
            self.apply(entry)
            self.redemptions[r.id] = r
        self.attempt(go)

    def _on_redemption(self, data, states, fn):
        rid = self.pick(self.redemptions, data, lambda r: r.state in states)
        if rid is None:
            return
        r = self.redemptions[rid]

        def go():
            new_r, entry = fn(r, self.vouchers[r.voucher_id], self.programmes[r.programme_id])
            self.apply(entry)
            self.redemptions[rid] = new_r
            if entry is not None and entry.kind is EntryKind.SETTLE:
                self.settle_entries[rid] = entry.id
        self.attempt(go)

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data(), any_state=st.booleans())
    def settle(self, data, any_state):
        states = set(m.RedemptionState) if any_state else {m.RedemptionState.RESERVED}
        self._on_redemption(data, states, lambda r, v, p: m.settle(r, v, p, by="enterprise", now=self.now, actor="e"))

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data(), any_state=st.booleans())
    def void(self, data, any_state):
        states = set(m.RedemptionState) if any_state else {m.RedemptionState.RESERVED}
        self._on_redemption(data, states, lambda r, v, p: m.void(r, v, p, reason="x", now=self.now, actor="a"))

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data())
    def pay(self, data):
        self._on_redemption(data, set(m.RedemptionState),
                            lambda r, v, p: m.payout(r, p, reference="bank", now=self.now,
                                                     actor=self.official(data, p)))

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data(), one_programme=st.booleans())
    def pay_batch(self, data, one_programme):
        """Bulk payout: every settled redemption of the agency (of one programme, if drawn)."""
        pid = self.pick(self.programmes, data) if one_programme else None
        settled = [r for _, r in sorted(self.redemptions.items())
                   if r.state is m.RedemptionState.SETTLED and (pid is None or r.programme_id == pid)]

        def go():
            # One organisation pays; it must govern every programme in the batch.
            org = data.draw(st.sampled_from(OFFICIALS))
            for q in sorted({r.programme_id for r in settled} | ({pid} if pid else set())):
                m.authorise_governing(self.programmes[q], org=org, admin=False, action=m.Governing.MANAGE)
            batch, paid = m.payout_batch("agency-1", settled, self.programmes, reference="batch", programme_id=pid,
                                         settled_before=None, note="", now=self.now, actor=org,
                                         batch_id=self.next_id("b"))
            assert batch.count == len(settled) == len(paid)
            for total in batch.totals:
                assert total.amount == sum(e.amount for r, e in paid if e is not None and r.programme_id ==
                                           total.programme_id)
            for r, entry in paid:
                assert r.state is m.RedemptionState.PAID and r.payout_batch_id == batch.id
                self.apply(entry)
                self.redemptions[r.id] = r
        self.attempt(go)

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data(), amount=st.integers(1, 700))
    def claw_back(self, data, amount):
        self._on_redemption(data, set(m.RedemptionState), lambda r, v, p: m.clawback(
            r, p, amount=amount, reason="wrongly settled", settle_entry_id=self.settle_entries.get(r.id),
            now=self.now, actor=self.official(data, p)))

    def _end(self, vid: str, revoke: bool, actor: str = "system") -> None:
        v = self.vouchers[vid]
        p = self.programmes[v.programme_id]
        if revoke or v.is_past_validity(self.now):
            # Open reservations are released first, as the service does.
            for rid, r in sorted(self.redemptions.items()):
                if r.voucher_id == vid and r.state is m.RedemptionState.RESERVED and v.state in (
                        m.VoucherState.ACTIVE, m.VoucherState.FROZEN):
                    new_r, entry = m.void(r, v, p, reason="voucher ended", now=self.now, actor="system")
                    self.apply(entry)
                    self.redemptions[rid] = new_r
        available = self.ledger.balance(voucher_account(p.id, vid, AccountKind.AVAILABLE))
        new_v, entry = m.end_voucher(v, p, available=available, revoke=revoke, reason="r", now=self.now, actor=actor)
        self.apply(entry)
        self.vouchers[vid] = new_v

    @precondition(lambda self: self.vouchers)
    @rule(data=st.data(), days=st.integers(0, 40))
    def expire(self, data, days):
        self.now += timedelta(days=days)
        vid = self.pick(self.vouchers, data)
        self.attempt(lambda: self._end(vid, revoke=False))

    @precondition(lambda self: self.vouchers)
    @rule(data=st.data())
    def revoke(self, data):
        vid = self.pick(self.vouchers, data)
        p = self.programmes[self.vouchers[vid].programme_id]
        self.attempt(lambda: self._end(vid, revoke=True, actor=self.official(data, p)))

    @precondition(lambda self: self.vouchers)
    @rule(data=st.data(), freeze=st.booleans())
    def freeze_or_unfreeze(self, data, freeze):
        vid = self.pick(self.vouchers, data)
        v = self.vouchers[vid]

        def go():
            self.official(data, self.programmes[v.programme_id])
            self.vouchers[vid] = m.freeze(v, reason="audit") if freeze else m.unfreeze(v, now=self.now)
        self.attempt(go)

    # --- invariants (one method, so the journal is read once per step)
    @invariant()
    def invariants_hold(self):
        self.ledger_check_passes()
        self.ledger_agrees_with_redemptions()
        self.replay_rebuilds_identical_balances()
        self.only_owners_govern()

    def ledger_check_passes(self):
        entries, accounts = stored(self.ledger)
        report = check_ledger(entries, accounts, dict(self.ledger.heads))
        assert report.ok, report.problems
        for f in report.programmes:
            assert f.budget == f.unissued + f.available + f.reserved + f.payable + f.paid + f.expired + f.revoked

    def ledger_agrees_with_redemptions(self):
        reserved = defaultdict(int)
        payable = defaultdict(int)
        paid = defaultdict(int)
        for r in self.redemptions.values():
            if r.state is m.RedemptionState.RESERVED:
                reserved[r.voucher_id] += r.amount
            elif r.state is m.RedemptionState.SETTLED:
                payable[r.programme_id] += r.amount - r.clawed_back
            elif r.state is m.RedemptionState.PAID:
                paid[r.programme_id] += r.amount - r.clawed_back
        for vid, v in self.vouchers.items():
            assert self.ledger.balance(voucher_account(v.programme_id, vid, AccountKind.RESERVED)) == reserved[vid]
            if v.state in (m.VoucherState.EXPIRED, m.VoucherState.REVOKED):
                assert self.ledger.balance(voucher_account(v.programme_id, vid, AccountKind.AVAILABLE)) == 0
        for pid in self.programmes:
            assert self.ledger.balance(agency_account(pid, "agency-1", AccountKind.PAYABLE)) == payable[pid]
            assert self.ledger.balance(agency_account(pid, "agency-1", AccountKind.PAID)) == paid[pid]

    def only_owners_govern(self):
        for e in self.ledger.entries:
            if e.kind in OWNER_ENTRIES:
                assert e.created_by == self.programmes[e.programme_id].owner_org_id, (e.kind, e.created_by)

    def replay_rebuilds_identical_balances(self):
        replayed = Ledger()
        for e in self.ledger.entries:
            replayed.apply(e)
        assert {k: v for k, v in replayed.balances.items()} == {k: v for k, v in self.ledger.balances.items()}
        assert replayed.heads == self.ledger.heads


TestVoucherBook = VoucherBook.TestCase
TestVoucherBook.settings = settings(
    max_examples=1000, stateful_step_count=20, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- single properties -----------------------------------------------------------------------

def test_an_unbalanced_entry_cannot_be_built():
    a = programme_account("p", AccountKind.FUNDING)
    b = programme_account("p", AccountKind.UNISSUED)
    with pytest.raises(UnbalancedEntry):
        JournalEntry(id="x", kind=EntryKind.OPEN, chain_key="p", programme_id="p", currency=CURRENCY,
                     postings=(Posting(a, -5), Posting(b, 4)), created_at=T0, created_by="g")


@given(amounts=st.lists(st.integers(1, 10**12), min_size=1, max_size=20))
def test_replayed_balances_always_sum_to_zero(amounts):
    ledger = Ledger()
    for n in amounts:
        p, entry = m.open_programme(m.new_id(), terms(), n, now=T0, actor="gov")
        ledger.apply(entry)
    assert sum(ledger.balances.values()) == 0
    report = check_ledger(*stored(ledger), dict(ledger.heads))
    assert report.ok
    assert sum(f.budget for f in report.programmes) == sum(amounts)


def _small_ledger() -> Ledger:
    ledger = Ledger()
    p, entry = m.open_programme("prog", terms(), 1000, now=T0, actor="gov")
    ledger.apply(entry)
    app = m.Application("a", "prog", "ent", 250, CURRENCY, "", m.ApplicationState.APPROVED, [], "e", T0)
    v, entry = m.issue_voucher(p, app, unissued=1000, issued_this_year=0, now=T0, actor="gov", voucher_id="v")
    ledger.apply(entry)
    ledger.apply(m.top_up(p, 10, now=T0, actor="gov"))
    return ledger


@pytest.mark.parametrize("tamper", ["amount", "delete_middle", "delete_last", "memo", "balance"])
def test_the_check_detects_tampering(tamper):
    ledger = _small_ledger()
    entries, accounts = stored(ledger)
    heads = dict(ledger.heads)
    assert check_ledger(entries, accounts, heads).ok
    if tamper == "amount":
        e = entries[1]
        entries[1] = replace(e, postings=tuple((a, n * 2) for a, n in e.postings))
    elif tamper == "delete_middle":
        del entries[1]
    elif tamper == "delete_last":
        del entries[2]
    elif tamper == "memo":
        entries[0] = replace(entries[0], fields={**entries[0].fields, "memo": "changed"})
    elif tamper == "balance":
        accounts[0] = replace(accounts[0], balance=accounts[0].balance + 1)
    report = check_ledger(entries, accounts, heads)
    assert not report.ok
    assert report.problems


def test_refusing_an_overdraft_leaves_the_ledger_unchanged():
    ledger = _small_ledger()
    before = dict(ledger.balances)
    a = voucher_account("prog", "v", AccountKind.AVAILABLE)
    b = voucher_account("prog", "v", AccountKind.RESERVED)
    entry = JournalEntry.transfer(source=a, target=b, amount=251, id="y", kind=EntryKind.RESERVE, chain_key="v",
                                  programme_id="prog", currency=CURRENCY, created_at=T0, created_by="x")
    with pytest.raises(InsufficientBalance):
        ledger.apply(entry)
    assert dict(ledger.balances) == before
    assert entry_hash(entry, GENESIS) != entry_hash(entry, "1" * 64)
