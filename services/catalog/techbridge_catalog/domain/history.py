"""What changed between two versions of a record, field by field, for the owner's history."""

from __future__ import annotations

from typing import Any

# Never copy confidential text into the history's old/new values: the history says that it
# changed, not what it said (the history is readable by reviewers too).
REDACTED_FIELDS = frozenset({"confidential_details"})


def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    before = before or {}
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key in REDACTED_FIELDS:
            changes.append({"field": key, "old": None, "new": None, "redacted": True})
        else:
            changes.append({"field": key, "old": old, "new": new})
    return changes
