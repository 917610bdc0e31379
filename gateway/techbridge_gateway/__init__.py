"""Techbridge gateway: the single public entry: auth, routing, limits, merged OpenAPI, event subscriptions."""
