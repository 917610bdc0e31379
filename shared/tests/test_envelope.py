import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_structured
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given
from hypothesis import strategies as st

from techbridge_shared.envelope import (
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    EnvelopeError,
    dlq_topic,
    event_type,
    kafka_headers,
    new_event,
    topic_for_type,
    topic_name,
)


def test_names_follow_the_conventions():
    assert event_type("catalog", "achievement", "published") == "techbridge.catalog.achievement.published.v1"
    assert topic_name("vouchers", "voucher", 2) == "techbridge.vouchers.voucher.v2"
    assert topic_for_type("techbridge.matching.transfer.offer-made.v1") == "techbridge.matching.transfer.v1"
    assert dlq_topic("techbridge.catalog.achievement.v1") == "techbridge.catalog.achievement.v1.dlq"
    with pytest.raises(ValueError):
        event_type("Catalog", "achievement", "published")
    with pytest.raises(ValueError):
        topic_for_type("com.example.thing.happened")


def _decode_with_sdk(event: CloudEvent):
    message = KafkaMessage(
        headers=dict(kafka_headers()), key=event.subject.encode(), value=event.to_json()
    )
    return from_structured(message, JSONFormat())


def test_official_sdk_reads_our_structured_kafka_records():
    event = new_event(service="catalog", aggregate="achievement", verb="published", subject="a-1",
                      data={"title_zh": "锂电池隔膜", "trl": 6, "asking_price": {"amount": 1_000_000, "currency": "CNY"}},
                      traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    decoded = _decode_with_sdk(event)
    assert decoded.get_id() == event.id
    assert decoded.get_type() == "techbridge.catalog.achievement.published.v1"
    assert decoded.get_source() == "/techbridge/catalog"
    assert decoded.get_subject() == "a-1"
    assert decoded.get_specversion() == "1.0"
    assert decoded.get_time() == event.time
    assert decoded.get_data()["title_zh"] == "锂电池隔膜"
    assert decoded.get_attributes()["traceparent"].startswith("00-")
    assert dict(kafka_headers())["content-type"] == STRUCTURED_CONTENT_TYPE.encode()


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.integers() | st.text(max_size=20), max_size=5),
       st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x9FFF), min_size=1, max_size=40))
def test_round_trip_keeps_every_attribute(data, subject):
    event = new_event(service="probe", aggregate="note", verb="recorded", subject=subject, data=data)
    again = CloudEvent.from_json(event.to_json())
    assert again == event
    assert _decode_with_sdk(event).get_data() == data


@pytest.mark.parametrize("raw", [b"\x00garbage", b"[]", b'{"specversion": "1.0"}',
                                 json.dumps({"specversion": "0.3", "id": "x", "source": "/techbridge/x",
                                             "type": "techbridge.x.y.z.v1", "subject": "s"}).encode()])
def test_invalid_records_are_rejected_with_a_reason(raw):
    with pytest.raises(EnvelopeError):
        CloudEvent.from_json(raw)


def test_time_is_utc_with_z():
    event = new_event(service="probe", aggregate="note", verb="recorded", subject="n", data={})
    body = json.loads(event.to_json())
    assert body["time"].endswith("Z")
    assert CloudEvent.from_json(event.to_json()).time.tzinfo == UTC
    with pytest.raises(ValueError):
        CloudEvent(source="/techbridge/x", type="techbridge.x.y.z.v1", subject="s", time=datetime(2026, 1, 1))


def test_records_are_compact_utf8_json_without_absent_attributes():
    event = new_event(service="probe", aggregate="note", verb="recorded", subject="锂电池",
                      data={"title": "隔膜\n\"新\"", "none_kept": None, "n": 10**20, "nested": {"a": [1, None]}})
    expected = {**event.model_dump(mode="json", exclude_none=True),
                "time": event.time.isoformat().replace("+00:00", "Z")}
    raw = event.to_json()
    assert json.loads(raw) == expected
    assert raw == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    whole_second = event.model_copy(update={"time": datetime(2026, 1, 1, tzinfo=UTC)})
    assert json.loads(whole_second.to_json())["time"] == "2026-01-01T00:00:00Z"


def test_events_join_the_current_trace():
    from techbridge_shared.tracing import child_traceparent, current_traceparent, trace_id

    parent = child_traceparent(None)
    token = current_traceparent.set(parent)
    try:
        event = new_event(service="probe", aggregate="note", verb="recorded", subject="n", data={})
    finally:
        current_traceparent.reset(token)
    assert trace_id(event.traceparent) == trace_id(parent)
    assert new_event(service="probe", aggregate="note", verb="recorded", subject="n", data={}).traceparent is None
