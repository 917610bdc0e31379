"""Entities, rules, commands, events and errors: no I/O, no SQLAlchemy."""
