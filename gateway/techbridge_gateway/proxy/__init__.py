"""Forwarding /api/v1/<service>/... to the services, and their merged OpenAPI document."""
