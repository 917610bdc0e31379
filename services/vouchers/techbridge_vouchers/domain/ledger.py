"""The double-entry ledger: accounts, balanced journal entries, a hash chain, and its check.

Every movement of voucher money is one `JournalEntry` whose postings sum to zero, in integer
minor units of one currency. Entries are never edited or deleted; a correction is a new entry
(a reversal names the entry it reverses). Balances are the sum of an account's postings.

Accounts (one set per programme; ids are deterministic so no lookup is needed to post):

    programme:<p>:funding        the appropriation; the only account that goes below zero
    programme:<p>:unissued       budget not yet issued as vouchers
    programme:<p>:expired        value that lapsed when vouchers expired (policy "lapse")
    programme:<p>:revoked        value withdrawn from revoked vouchers
    voucher:<v>:available        what the holder can still spend
    voucher:<v>:reserved         held for pending redemptions (two-phase, like a pending transfer)
    agency:<p>:<org>:payable     settled, owed to the agency
    agency:<p>:<org>:paid        settled and paid out to the agency

So for every programme:  budget (= -funding) = unissued + issued, and
issued = available + reserved + settled (payable + paid) + expired + revoked.

Tamper evidence: entries form hash chains, one per chain key (the programme for programme-level
entries, including issuance; the voucher for everything that happens to a voucher). Each entry
stores the previous entry's hash in its chain and its own hash over its canonical content, and
the programme / voucher row stores its chain head. Editing an entry breaks its hash; deleting or
inserting one breaks the links; deleting the newest one no longer matches the head. Hashes are
also carried in the events, so a subscriber holds anchors outside this database.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import orjson

GENESIS = "0" * 64


class AccountKind(StrEnum):
    FUNDING = "funding"
    UNISSUED = "unissued"
    EXPIRED = "expired"
    REVOKED = "revoked"
    AVAILABLE = "available"
    RESERVED = "reserved"
    PAYABLE = "payable"
    PAID = "paid"


#: The only kinds whose balance may go below zero.
NEGATIVE_ALLOWED = frozenset({AccountKind.FUNDING})


class EntryKind(StrEnum):
    OPEN = "open"                # funding -> unissued (initial budget)
    TOP_UP = "top_up"            # funding -> unissued
    ISSUE = "issue"              # unissued -> voucher available
    RESERVE = "reserve"          # available -> reserved
    VOID = "void"                # reserved -> available (release)
    SETTLE = "settle"            # reserved -> agency payable
    PAYOUT = "payout"            # agency payable -> agency paid
    EXPIRE = "expire"            # available -> expired, or -> unissued (policy return_to_budget)
    REVOKE = "revoke"            # available -> revoked
    CLAWBACK = "clawback"        # agency payable/paid -> unissued (reverses a settlement)


@dataclass(frozen=True)
class Account:
    id: str
    kind: AccountKind
    programme_id: str
    owner_id: str  # programme id, voucher id or agency organisation id

    @property
    def may_go_negative(self) -> bool:
        return self.kind in NEGATIVE_ALLOWED


def programme_account(programme_id: str, kind: AccountKind) -> Account:
    assert kind in (AccountKind.FUNDING, AccountKind.UNISSUED, AccountKind.EXPIRED, AccountKind.REVOKED)
    return Account(f"programme:{programme_id}:{kind}", kind, programme_id, programme_id)


def voucher_account(programme_id: str, voucher_id: str, kind: AccountKind) -> Account:
    assert kind in (AccountKind.AVAILABLE, AccountKind.RESERVED)
    return Account(f"voucher:{voucher_id}:{kind}", kind, programme_id, voucher_id)


def agency_account(programme_id: str, agency_org_id: str, kind: AccountKind) -> Account:
    assert kind in (AccountKind.PAYABLE, AccountKind.PAID)
    return Account(f"agency:{programme_id}:{agency_org_id}:{kind}", kind, programme_id, agency_org_id)


def programme_accounts(programme_id: str) -> list[Account]:
    return [programme_account(programme_id, k) for k in
            (AccountKind.FUNDING, AccountKind.UNISSUED, AccountKind.EXPIRED, AccountKind.REVOKED)]


def voucher_accounts(programme_id: str, voucher_id: str) -> list[Account]:
    return [voucher_account(programme_id, voucher_id, k) for k in (AccountKind.AVAILABLE, AccountKind.RESERVED)]


def agency_accounts(programme_id: str, agency_org_id: str) -> list[Account]:
    return [agency_account(programme_id, agency_org_id, k) for k in (AccountKind.PAYABLE, AccountKind.PAID)]


class UnbalancedEntry(ValueError):
    """A journal entry whose postings do not sum to zero (a programming error, never user input)."""


@dataclass(frozen=True)
class Posting:
    account: Account
    amount: int  # signed minor units: + increases the account's balance, - decreases it


@dataclass(frozen=True)
class JournalEntry:
    id: str
    kind: EntryKind
    chain_key: str
    programme_id: str
    currency: str
    postings: tuple[Posting, ...]
    created_at: datetime
    created_by: str
    voucher_id: str | None = None
    redemption_id: str | None = None
    reverses: str | None = None
    memo: str = ""

    def __post_init__(self):
        if len(self.postings) < 2:
            raise UnbalancedEntry(f"entry {self.id} has fewer than two postings")
        seen = set()
        for p in self.postings:
            if type(p.amount) is not int or p.amount == 0:
                raise UnbalancedEntry(f"entry {self.id}: posting amounts are non-zero integers")
            if p.account.id in seen:
                raise UnbalancedEntry(f"entry {self.id}: account {p.account.id} posted twice")
            if p.account.programme_id != self.programme_id:
                raise UnbalancedEntry(f"entry {self.id}: posting crosses programmes")
            seen.add(p.account.id)
        if sum(p.amount for p in self.postings) != 0:
            raise UnbalancedEntry(f"entry {self.id}: postings sum to {sum(p.amount for p in self.postings)}")

    @classmethod
    def transfer(cls, *, source: Account, target: Account, amount: int, **fields) -> JournalEntry:
        """The common two-legged entry: move `amount` from source to target."""
        if amount <= 0:
            raise UnbalancedEntry("a transfer moves a positive amount")
        return cls(postings=(Posting(source, -amount), Posting(target, amount)), **fields)

    @property
    def amount(self) -> int:
        """The total moved (sum of the positive legs)."""
        return sum(p.amount for p in self.postings if p.amount > 0)


def canonical(entry_fields: Mapping[str, object], postings: Iterable[tuple[str, int]], prev_hash: str) -> bytes:
    """The exact bytes an entry's hash covers; the check rebuilds them from stored rows."""
    body = {
        **entry_fields,
        "postings": sorted([a, int(n)] for a, n in postings),
        "prev_hash": prev_hash,
    }
    # The same bytes as `json.dumps(body, sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False).encode()`, which wrote the hashes stored before (a test holds them
    # equal), at a fifth of the CPU.
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def hash_fields(entry: JournalEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "kind": str(entry.kind),
        "chain_key": entry.chain_key,
        "programme_id": entry.programme_id,
        "currency": entry.currency,
        "created_at": iso(entry.created_at),
        "created_by": entry.created_by,
        "voucher_id": entry.voucher_id,
        "redemption_id": entry.redemption_id,
        "reverses": entry.reverses,
        "memo": entry.memo,
    }


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def entry_hash(entry: JournalEntry, prev_hash: str) -> str:
    return hashlib.sha256(
        canonical(hash_fields(entry), ((p.account.id, p.amount) for p in entry.postings), prev_hash)
    ).hexdigest()


class InsufficientBalance(Exception):
    def __init__(self, account: Account, balance: int, wanted: int):
        super().__init__(f"account {account.id} holds {balance}, cannot take {wanted}")
        self.account = account
        self.balance = balance
        self.wanted = wanted


@dataclass
class Ledger:
    """An in-memory ledger: the reference model the store must agree with, and the replayer
    the check uses. `apply` refuses an entry that would take a non-funding account below zero,
    and leaves the ledger unchanged when it refuses."""

    balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    accounts: dict[str, Account] = field(default_factory=dict)
    entries: list[JournalEntry] = field(default_factory=list)
    heads: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    def balance(self, account: Account | str) -> int:
        return self.balances.get(account if isinstance(account, str) else account.id, 0)

    def apply(self, entry: JournalEntry) -> str:
        for p in entry.postings:
            after = self.balance(p.account) + p.amount
            if after < 0 and not p.account.may_go_negative:
                raise InsufficientBalance(p.account, self.balance(p.account), -p.amount)
        for p in entry.postings:
            self.accounts[p.account.id] = p.account
            self.balances[p.account.id] = self.balance(p.account) + p.amount
        digest = entry_hash(entry, self.heads.get(entry.chain_key, GENESIS))
        self.heads[entry.chain_key] = digest
        self.hashes[entry.id] = digest
        self.entries.append(entry)
        return digest


# --- the check ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredEntry:
    """One journal row as read back from the store, with its postings."""

    seq: int
    fields: dict[str, object]  # as hash_fields() produced them
    postings: tuple[tuple[str, int], ...]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class StoredAccount:
    id: str
    kind: str
    programme_id: str
    owner_id: str
    currency: str
    balance: int  # the cached balance the store keeps for fast, locked updates


@dataclass
class ProgrammeFigures:
    programme_id: str
    currency: str
    budget: int = 0
    unissued: int = 0
    available: int = 0
    reserved: int = 0
    payable: int = 0
    paid: int = 0
    expired: int = 0
    revoked: int = 0

    @property
    def settled(self) -> int:
        return self.payable + self.paid

    @property
    def issued(self) -> int:
        return self.available + self.reserved + self.settled + self.expired + self.revoked


@dataclass
class LedgerReport:
    ok: bool
    entries_checked: int
    accounts_checked: int
    problems: list[str]
    programmes: list[ProgrammeFigures]
    balances: dict[str, int]


def check_ledger(
    entries: Iterable[StoredEntry],
    accounts: Iterable[StoredAccount],
    heads: Mapping[str, str],
) -> LedgerReport:
    """Recompute everything from the journal and compare with what the store claims.

    `entries` in sequence order; `heads` maps each chain key (programme / voucher id) to the
    head hash its row stores. Proves: every entry balances; the hash chains are intact and end
    at the stored heads; the cached balances equal the replayed ones; no account that must not
    is below zero; sum of all postings is zero; per programme budget = unissued + issued.
    """
    problems: list[str] = []
    replayed: dict[str, int] = defaultdict(int)
    last_in_chain: dict[str, str] = {}
    total_by_currency: dict[str, int] = defaultdict(int)
    account_list = list(accounts)
    known = {a.id: a for a in account_list}
    n = 0
    for e in entries:
        n += 1
        eid = e.fields.get("id")
        if sum(a for _, a in e.postings) != 0:
            problems.append(f"entry {eid} (seq {e.seq}) does not balance")
        if len(e.postings) < 2:
            problems.append(f"entry {eid} (seq {e.seq}) has fewer than two postings")
        chain = str(e.fields.get("chain_key"))
        expected_prev = last_in_chain.get(chain, GENESIS)
        if e.prev_hash != expected_prev:
            problems.append(f"entry {eid} (seq {e.seq}) does not follow the previous entry of chain {chain}")
        digest = hashlib.sha256(canonical(e.fields, e.postings, e.prev_hash)).hexdigest()
        if digest != e.hash:
            problems.append(f"entry {eid} (seq {e.seq}) was altered: its hash does not match its content")
        last_in_chain[chain] = e.hash
        currency = str(e.fields.get("currency"))
        for account_id, amount in e.postings:
            replayed[account_id] += amount
            total_by_currency[currency] += amount
            acc = known.get(account_id)
            if acc is None:
                problems.append(f"entry {eid} posts to unknown account {account_id}")
            elif acc.currency != currency:
                problems.append(f"entry {eid} posts {currency} to {acc.currency} account {account_id}")
    for chain, head in heads.items():
        if last_in_chain.get(chain, GENESIS) != head:
            problems.append(f"chain {chain} ends at another entry than its stored head (entries missing or added)")
    for chain in last_in_chain:
        if chain not in heads:
            problems.append(f"chain {chain} has entries but no owner row")
    for currency, total in total_by_currency.items():
        if total != 0:
            problems.append(f"postings in {currency} sum to {total}, not zero")
    figures: dict[str, ProgrammeFigures] = {}
    for a in account_list:
        bal = replayed.get(a.id, 0)
        if bal != a.balance:
            problems.append(f"account {a.id} claims balance {a.balance}, the journal gives {bal}")
        if bal < 0 and a.kind not in NEGATIVE_ALLOWED:
            problems.append(f"account {a.id} is below zero ({bal})")
        f = figures.setdefault(a.programme_id, ProgrammeFigures(a.programme_id, a.currency))
        kind = AccountKind(a.kind)
        if kind is AccountKind.FUNDING:
            f.budget -= bal
        else:
            setattr(f, kind.value, getattr(f, kind.value) + bal)
    for f in figures.values():
        if f.budget != f.unissued + f.issued:
            problems.append(
                f"programme {f.programme_id}: budget {f.budget} != unissued {f.unissued} + issued {f.issued}"
            )
    return LedgerReport(
        ok=not problems,
        entries_checked=n,
        accounts_checked=len(account_list),
        problems=problems,
        programmes=sorted(figures.values(), key=lambda f: f.programme_id),
        balances=dict(replayed),
    )
