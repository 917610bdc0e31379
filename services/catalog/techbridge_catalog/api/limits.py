"""Refuse oversize request bodies before they are read into memory (413 problem+json)."""

from __future__ import annotations

import json

IMPORT_PATH_SUFFIX = "/achievements/import"


class BodyLimitMiddleware:
    def __init__(self, app, max_body: int, max_import: int):
        self.app = app
        self.max_body = max_body
        self.max_import = max_import

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        limit = self.max_import if scope["path"].endswith(IMPORT_PATH_SUFFIX) else self.max_body
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return await _too_large(scope, send, limit)
        seen = 0
        refused = False
        answered = False

        async def limited_receive():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise _TooLarge()
            return message

        async def send_unless_refused(message):
            # The framework may turn the refusal raised while it reads the body into an answer of
            # its own (a body it could not parse): the caller is told what really happened.
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                if refused:
                    await _too_large(scope, send, limit)
                    return
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, send_unless_refused)
        except _TooLarge:
            if not answered:
                await _too_large(scope, send, limit)
        except Exception:
            if not refused:
                raise
            if not answered:
                await _too_large(scope, send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(scope, send, limit: int) -> None:
    body = json.dumps({
        "type": "https://techbridge.example/problems/payload-too-large", "title": "Payload Too Large",
        "status": 413, "detail": f"request body exceeds {limit} bytes", "instance": scope["path"],
        "code": "payload_too_large", "errors": [{"field": "body", "message": f"larger than {limit} bytes"}],
    }).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
