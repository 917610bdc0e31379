"""Test support: a real Kafka broker, real PostgreSQL databases, and service processes.

Loaded as a pytest plugin by the repository's conftest.py. Nothing here fakes a component.
"""
