"""International Patent Classification codes and how far two sets of them agree.

A code such as "H01M 10/052" is read as the hierarchy section H > class H01 > subclass H01M >
main group H01M 10 > subgroup H01M 10/052. Two codes share the deepest level they agree on;
the overlap of two sets is the best agreement for each code of the query set, weighted by
depth, averaged, in [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IPC_RE = re.compile(r"^([A-H])(\d{2})([A-Z])(?:\s*(\d{1,4})(?:/(\d{1,6}))?)?$")

LEVELS = ("section", "class", "subclass", "group", "subgroup")
# How much agreeing down to each level counts.
LEVEL_WEIGHT = {0: 0.0, 1: 0.2, 2: 0.45, 3: 0.7, 4: 0.85, 5: 1.0}


@dataclass(frozen=True)
class IpcCode:
    section: str
    klass: str
    subclass: str
    group: str | None
    subgroup: str | None

    @property
    def path(self) -> tuple[str, ...]:
        parts = [self.section, f"{self.section}{self.klass}", f"{self.section}{self.klass}{self.subclass}"]
        if self.group is not None:
            parts.append(f"{parts[2]} {self.group}")
            if self.subgroup is not None:
                parts.append(f"{parts[2]} {self.group}/{self.subgroup}")
        return tuple(parts)

    def __str__(self) -> str:
        return self.path[-1]


def parse_ipc(code: str) -> IpcCode:
    """Parse an IPC code ("H01M 10/052", "H01M10/052", "H01M"); ValueError if it is not one."""
    text = re.sub(r"\s+", " ", code.strip().upper())
    m = _IPC_RE.match(text)
    if not m:
        raise ValueError(f"not an IPC code: {code!r} (expected e.g. 'H01M 10/052' or 'H01M')")
    section, klass, subclass, group, subgroup = m.groups()
    return IpcCode(section, klass, subclass, str(int(group)) if group else None, subgroup)


def normalise_ipc(code: str) -> str:
    return str(parse_ipc(code))


def try_parse(code: str) -> IpcCode | None:
    try:
        return parse_ipc(code)
    except ValueError:
        return None


def common_depth(a: IpcCode, b: IpcCode) -> int:
    depth = 0
    for x, y in zip(a.path, b.path, strict=False):
        if x != y:
            break
        depth += 1
    return depth


@dataclass(frozen=True)
class IpcOverlap:
    score: float  # 0..1
    shared: tuple[str, ...]  # the deepest shared class for each agreeing pair, e.g. "H01M 10"


def overlap(query: list[str], candidate: list[str]) -> IpcOverlap:
    q = [c for c in (try_parse(x) for x in query) if c]
    d = [c for c in (try_parse(x) for x in candidate) if c]
    if not q or not d:
        return IpcOverlap(0.0, ())
    total = 0.0
    shared: list[str] = []
    for qc in q:
        best, best_code = 0, None
        for dc in d:
            depth = common_depth(qc, dc)
            if depth > best:
                best, best_code = depth, qc.path[depth - 1]
        total += LEVEL_WEIGHT[best]
        # Agreeing only on the section (e.g. "H") says little; show classes and deeper.
        if best >= 2 and best_code not in shared:
            shared.append(best_code)
    return IpcOverlap(round(total / len(q), 4), tuple(shared))
