"""Poison records for every consumer of the platform: each lands in its consumer's dead-letter
topic with headers naming its origin, after bounded retries where retrying could help, and the
valid events that follow it on the same partitions are still applied.

The consumer groups (services' `Subscription(...)`s, named per platform run):

| group | topics | handles |
|---|---|---|
| catalog .transfers | matching.transfer | signed, completed, cancelled |
| catalog .valuations | valuation.valuation | completed |
| matching .achievement-index | catalog.achievement | published, updated, withdrawn, expired, transferred |
| valuation .achievements | catalog.achievement | published, updated, withdrawn, expired, transferred |
| valuation .transfers | matching.transfer | signed, completed, cancelled |
| vouchers .organisations | catalog.organisation | registered, updated |
| vouchers .transfers | matching.transfer | proposed, offer-made, signed, completed, cancelled |
| gateway .subscriptions | every techbridge topic | every type (the event log behind webhooks and streams) |

To every partition of the four topics go, before any valid event of the test: a record that is
not JSON, a JSON record that is not a CloudEvent, and a CloudEvent whose data breaks the
contract of the consumers named below. Then the platform is driven through the gateway so that
every group receives valid events of types it handles, on the same partitions.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from e2e_platform import wait_for
from fault_db import inbox_ids, query
from fault_kafka import partitions_of, produce, read_dlq

pytestmark = pytest.mark.timeout(360)

C, M, VAL = "/api/v1/catalog", "/api/v1/matching", "/api/v1/valuation"
MAX_ATTEMPTS = 5  # the shared consumer's bound (ConsumerRunner.max_attempts)

ACH, ORG = "techbridge.catalog.achievement.v1", "techbridge.catalog.organisation.v1"
TRANSFER, VALUATION = "techbridge.matching.transfer.v1", "techbridge.valuation.valuation.v1"

# group suffix -> (service whose database holds its inbox, topics, handled types)
GROUPS = {
    "catalog.transfers": ("catalog", [TRANSFER], {"signed", "completed", "cancelled"}),
    "catalog.valuations": ("catalog", [VALUATION], {"completed"}),
    "matching.achievement-index": ("matching", [ACH], {"published", "updated", "withdrawn", "expired", "transferred"}),
    "valuation.achievements": ("valuation", [ACH], {"published", "updated", "withdrawn", "expired", "transferred"}),
    "valuation.transfers": ("valuation", [TRANSFER], {"signed", "completed", "cancelled"}),
    "vouchers.organisations": ("vouchers", [ORG], {"registered", "updated"}),
    "vouchers.transfers": ("vouchers", [TRANSFER], {"proposed", "offer-made", "signed", "completed", "cancelled"}),
    "gateway.subscriptions": ("gateway", [ACH, ORG, TRANSFER, VALUATION], None),
}


def group_name(tag: str, suffix: str) -> str:
    service, purpose = suffix.split(".", 1)
    return f"{service}-e2e-{tag}.{purpose}"


def cloudevent(type_: str, subject: str, data: dict) -> bytes:
    service = type_.split(".")[1]
    return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": f"/techbridge/{service}",
                       "type": type_, "subject": subject, "time": datetime.now(UTC).isoformat(),
                       "datacontenttype": "application/json", "data": data}).encode()


# Business-invalid events: a valid envelope whose data breaks the consumers' contract.
# topic -> (event, groups it must dead-letter after MAX_ATTEMPTS)
def invalid_events() -> dict[str, list[tuple[bytes, list[str]]]]:
    return {
        ACH: [(cloudevent("techbridge.catalog.achievement.published.v1", str(uuid.uuid4()), {"title_en": "no id"}),
               ["matching.achievement-index", "valuation.achievements"])],
        ORG: [(cloudevent("techbridge.catalog.organisation.registered.v1", str(uuid.uuid4()), {"name": "no id"}),
               ["vouchers.organisations"])],
        # No seller or buyer (catalog refuses it); a transfer id no store can hold.
        TRANSFER: [(cloudevent("techbridge.matching.transfer.cancelled.v1", "t" * 100,
                               {"transfer_id": "t" * 100, "achievement_ids": [str(uuid.uuid4())]}),
                    ["catalog.transfers", "valuation.transfers", "vouchers.transfers"])],
        VALUATION: [
            (cloudevent("techbridge.valuation.valuation.completed.v1", str(uuid.uuid4()),
                        {"valuation_id": str(uuid.uuid4())}), ["catalog.valuations"]),
            # An aggregate id longer than the event log holds (the gateway's only contract).
            (cloudevent("techbridge.valuation.valuation.requested.v1", "v" * 300, {"valuation_id": "v"}),
             ["gateway.subscriptions"]),
        ],
    }


def test_poison_records_reach_each_consumers_dead_letter_topic_and_the_rest_is_applied(
        fault_platform, fault_broker, enrol):
    bootstrap, tag = fault_broker.bootstrap, fault_platform.tag
    t0 = datetime.now(UTC)
    sent: list[tuple[str, int, bytes, str, list[str]]] = []  # topic, partition, value, kind, groups
    records = []
    for topic, invalid in invalid_events().items():
        for partition in partitions_of(bootstrap, topic):
            consumers = [g for g, (_, topics, _) in GROUPS.items() if topic in topics]
            batch = [(b"\xff\xfe not json {", "not JSON", consumers),
                     (json.dumps({"hello": "not a CloudEvent"}).encode(), "not a CloudEvent", consumers)]
            batch += [(value, "business-invalid", groups) for value, groups in invalid]
            for value, kind, groups in batch:
                records.append((topic, partition, b"poison-" + str(partition).encode(), value))
                sent.append((topic, partition, value, kind, groups))
    produced = produce(bootstrap, records)
    assert len(produced) == len(records)

    # --- then valid events of every handled type, through the gateway ----------------------
    gov = enrol("government", ["government"])            # organisation.registered
    uni = enrol("university", ["institution"], region="Shanghai/Jiading")
    ent = enrol("enterprise", ["enterprise"])
    aid = uni.ok("POST", f"{C}/achievements", status=201, json={
        "title_zh": "毒消息测试成果 一种固态电池", "title_en": "Poison-record test: a solid-state cell",
        "abstract_zh": "死信测试。", "abstract_en": "Published right after poison records.",
        "keywords": ["solid-state"], "fields": ["energy"], "ipc_codes": ["H01M 10/0562"], "ip_type": "know_how",
        "trl": 5, "transfer_modes": ["exclusive_licence"], "negotiable": True, "region": "Shanghai",
        "ip_records": [], "inventors": [], "co_owners": []})["achievement_id"]
    uni.ok("POST", f"{C}/achievements/{aid}/submit")
    gov.ok("POST", f"{C}/achievements/{aid}/publish")    # achievement.published
    wait_for("matching indexing the achievement published after the poison", lambda: uni.get(
        f"{M}/achievements/{aid}/matches", params={"limit": 1}).status_code == 200, timeout=90, interval=1)

    def valued():  # valuation.completed (valuation knows the achievement once it read the event)
        r = uni.post(f"{VAL}/valuations", json={
            "achievement_id": aid, "methods": ["cost"],
            "cost": {"basis": "replacement", "items": [{"label": "research staff", "amount": 10_000_000}]},
            "simulation": {"seed": 7, "paths": 1000}})
        assert r.status_code in (201, 404), r.text
        return r.status_code == 201

    wait_for("a valuation of the achievement", valued, timeout=90, interval=1)
    tid = ent.ok("POST", f"{M}/transfers", key=str(uuid.uuid4()), status=201, json={  # transfer.proposed
        "seller_org_id": uni.org_id, "buyer_org_id": ent.org_id, "achievement_ids": [aid],
        "offer": {"mode": "exclusive_licence", "exclusive": True, "territory": "CN", "term_months": 12,
                  "price": {"amount": 1_000_000, "currency": "CNY"}, "royalty": {"rate_bp": 300, "base": "net sales"},
                  "pricing": "private_agreement"}})["id"]
    ent.ok("POST", f"{M}/transfers/{tid}/cancel", key=str(uuid.uuid4()),      # transfer.cancelled
           json={"reason": "poison-record test"}, status=200)

    # The valid events the platform wrote after the poison, by topic.
    valid: dict[str, list[dict]] = {}
    for service in ("catalog", "matching", "valuation"):
        for row in query(fault_platform, service, "SELECT event_id, topic, type FROM outbox WHERE created_at >= $1",
                         t0):
            valid.setdefault(row["topic"], []).append(row)

    # Every group applies the valid events of the types it handles (its inbox has them).
    for suffix, (service, topics, verbs) in GROUPS.items():
        group = group_name(tag, suffix)
        wanted = {r["event_id"] for t in topics for r in valid.get(t, [])
                  if verbs is None or r["type"].split(".")[3] in verbs}
        assert wanted, f"{suffix}: the test produced no valid event this group handles"
        wait_for(f"{suffix} applying every valid event after the poison records",
                 lambda g=group, s=service, w=wanted: w <= inbox_ids(fault_platform, s, g), timeout=120, interval=1)

    # Every poison record is in the dead-letter topic of each group it was meant to break.
    def dead_letters() -> list[dict]:
        return [d for d in read_dlq(bootstrap) if d.get("failed-at", "") >= t0.isoformat()]

    def all_dead_lettered():
        dlq = dead_letters()
        missing = []
        for (topic, partition, value, kind, groups), meta in zip(sent, produced):
            for suffix in groups:
                group = group_name(tag, suffix)
                if not any(d["consumer-group"] == group and d["origin-topic"] == topic
                           and d["origin-partition"] == str(partition) and d["origin-offset"] == str(meta.offset)
                           for d in dlq):
                    missing.append((suffix, topic, partition, kind))
        return dlq if not missing else None

    try:
        dlq = wait_for("every poison record in its consumers' dead-letter topics", all_dead_lettered, timeout=120,
                       interval=2)
    except AssertionError:
        dlq = dead_letters()
        raise AssertionError(f"dead-lettered so far: {sorted((d['consumer-group'], d['origin-topic']) for d in dlq)}")

    by_origin = {(d["consumer-group"], d["origin-topic"], d["origin-partition"], d["origin-offset"]): d for d in dlq}
    counts = {"not JSON": 0, "not a CloudEvent": 0, "business-invalid": 0}
    for (topic, partition, value, kind, groups), meta in zip(sent, produced):
        for suffix in groups:
            d = by_origin[(group_name(tag, suffix), topic, str(partition), str(meta.offset))]
            assert d["topic"] == topic + ".dlq"
            assert d["value"] == value, "the dead letter carries the record as it was"
            assert d["error"] and d["failed-at"]
            # Malformed records cannot get better by retrying; a handler's failure is retried, boundedly.
            assert d["attempts"] == ("1" if kind != "business-invalid" else str(MAX_ATTEMPTS)), (suffix, kind, d)
            if kind == "not JSON":
                assert "not JSON" in d["error"]
            counts[kind] += 1
    # Nothing valid was dead-lettered.
    valid_ids = {r["event_id"] for rows in valid.values() for r in rows}
    for d in dlq:
        try:
            eid = json.loads(d["value"]).get("id")
        except ValueError:
            continue
        assert eid not in valid_ids, f"a valid event was dead-lettered by {d['consumer-group']}: {d['error']}"
    print(f"\npoison records: {len(sent)} sent to {len(GROUPS)} consumer groups; dead letters checked {counts}; "
          f"{len(valid_ids)} valid events after them, each applied by every group handling its type")
