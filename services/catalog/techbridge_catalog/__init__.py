"""Techbridge catalog: achievements and the organisation registry: listing, review workflow, bilingual search."""
