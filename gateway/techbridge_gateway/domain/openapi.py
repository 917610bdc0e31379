"""One OpenAPI document for partners: every service's public operations under their gateway
paths, the gateway's own (tokens, clients, subscriptions, streams), one security scheme.

Schemas with the same name and the same content are kept once; a name two services use for
different shapes is prefixed with the service name in that service's part (refs rewritten).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

REF_PREFIX = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

SECURITY_SCHEMES = {
    "oauth2": {
        "type": "oauth2",
        "description": "OAuth2 client credentials; the access token is a short-lived JWT.",
        "flows": {"clientCredentials": {"tokenUrl": "/auth/token", "scopes": {}}},
    },
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "An access token from POST /auth/token."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "An API key issued to a client by an administrator."},
}
SECURITY = [{"oauth2": []}, {"bearer": []}, {"apiKey": []}]

GATEWAY_RESPONSES = {
    "401": "Missing, expired or invalid credentials",
    "414": "The request target (path and query) is longer than the gateway accepts",
    "429": "Rate limit exceeded; see the Retry-After header",
    "503": "The service behind this path is unavailable",
    "504": "The service behind this path did not answer in time",
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": REF_PREFIX + "ProblemDetails"}}}}


def _validation_as_problem(op: dict[str, Any], responses: dict[str, Any]) -> None:
    """Every 422 is served as problem+json, whatever the framework's default document says; and
    an operation taking `limit` may get the gateway's own 422 for a page larger than it allows."""
    current = responses.get("422")
    if current is None:
        if any(p.get("name") == "limit" and p.get("in") == "query" for p in op.get("parameters", []) or []):
            responses["422"] = _problem("Validation failed (for example a page larger than allowed)")
        return
    content = current.get("content") or {}
    if "application/problem+json" not in content:
        responses["422"] = _problem(current.get("description") or "Validation failed")


def _rewrite_refs(node: Any, rename: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(REF_PREFIX):
                name = v[len(REF_PREFIX):]
                out[k] = REF_PREFIX + rename.get(name, name)
            else:
                out[k] = _rewrite_refs(v, rename)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, rename) for v in node]
    return node


def _public(service: str, path: str) -> bool:
    if service == "gateway":
        return path.startswith(("/api/v1/", "/auth/"))
    return path.startswith(f"/api/v1/{service}/") or path == f"/api/v1/{service}"


def merge(
    gateway_doc: Mapping[str, Any], service_docs: Mapping[str, Mapping[str, Any] | None], *,
    title: str = "Techbridge API", version: str = "1.0.0", server_url: str = "",
    unavailable: list[str] | None = None,
) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    tags: dict[str, dict] = {}
    operation_ids: set[str] = set()
    parts = [("gateway", gateway_doc)] + [(n, d) for n, d in sorted(service_docs.items()) if d]
    for service, doc in parts:
        doc = copy.deepcopy(dict(doc))
        own = doc.get("components", {}).get("schemas", {}) or {}
        rename = {}
        for name, schema in own.items():
            if name in schemas and schemas[name] != schema:
                rename[name] = f"{service.capitalize()}{name}"
        doc = _rewrite_refs(doc, rename)
        for name, schema in (doc.get("components", {}).get("schemas", {}) or {}).items():
            schemas.setdefault(rename.get(name, name), schema)
        for tag in doc.get("tags", []) or []:
            tags.setdefault(tag["name"], tag)
        for path, item in (doc.get("paths") or {}).items():
            if not _public(service, path):
                continue
            item = dict(item)
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                op_id = op.get("operationId") or f"{method}-{path}"
                if op_id in operation_ids:
                    op_id = f"{service}-{op_id}"
                operation_ids.add(op_id)
                op["operationId"] = op_id
                op.setdefault("tags", [service])
                for t in op["tags"]:
                    tags.setdefault(t, {"name": t})
                responses = op.setdefault("responses", {})
                _validation_as_problem(op, responses)
                if service == "gateway" and path.startswith("/auth/"):
                    op["security"] = []
                    responses.setdefault("414", _problem(GATEWAY_RESPONSES["414"]))
                    continue
                op.setdefault("security", SECURITY)
                for status, description in GATEWAY_RESPONSES.items():
                    if service == "gateway" and status in ("503", "504"):
                        continue
                    responses.setdefault(status, _problem(description))
            paths[path] = item
    if "ProblemDetails" not in schemas:
        schemas["ProblemDetails"] = {"type": "object", "title": "ProblemDetails"}
    info = {
        "title": title,
        "version": version,
        "description": (
            "Every Techbridge service through one entry. Get a token with OAuth2 client credentials "
            "at POST /auth/token and send it as `Authorization: Bearer <token>`."
        ),
    }
    if unavailable:
        info["x-techbridge-unavailable"] = sorted(unavailable)
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": info,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": SECURITY_SCHEMES},
        "security": SECURITY,
        "tags": sorted(tags.values(), key=lambda t: t["name"]),
    }
    if server_url:
        out["servers"] = [{"url": server_url.rstrip("/")}]
    return out
