"""Explanations as the API and the match.found event show them."""

from __future__ import annotations

from ..domain.matching import ConstraintCheck, Outcome
from ..retrieval.engine import Candidate, HybridIndex
from ..retrieval.text import display_terms


def explanation(evidence: Candidate, checks: list[ConstraintCheck], index: HybridIndex | None = None,
                adjustments: list[str] | None = None, query_text: str | None = None) -> dict:
    surface = display_terms(query_text) if query_text else {}
    return {
        "matched_terms": [surface.get(t, t) for t in evidence.matched_terms[:20]],
        "term_coverage": evidence.term_coverage,
        "semantic_similarity": evidence.dense,
        "shared_ipc": list(evidence.ipc.shared),
        "ipc_overlap": evidence.ipc.score,
        "lexical_rank": evidence.lexical_rank,
        "semantic_rank": evidence.dense_rank,
        "constraints_met": [{"name": c.name, "detail": c.detail} for c in checks if c.outcome == Outcome.met],
        "constraints_missed": [{"name": c.name, "detail": c.detail, "hard": c.hard} for c in checks if c.outcome == Outcome.missed],
        "constraints_unknown": [{"name": c.name, "detail": c.detail} for c in checks if c.outcome == Outcome.unknown],
        "adjustments": adjustments or [],
    }
