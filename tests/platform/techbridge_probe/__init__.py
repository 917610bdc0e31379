"""A minimal service built only from the shared library, used to prove the plumbing end to end.

It records notes (a row + a `techbridge.probe.note.recorded.v1` event through the outbox) and
consumes those events into a tally whose effect is deliberately not idempotent by itself
(a counter increment and one row per application), so a duplicate application would show.
A note whose text is "fail-always" makes the consumer's handler fail every time (DLQ test);
"store-down-N" makes it fail N times as if its database had dropped the connection.
"""
