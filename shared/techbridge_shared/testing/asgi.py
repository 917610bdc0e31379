"""Serve an ASGI app over real HTTP inside the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn

from .kafka_broker import free_port


@contextlib.asynccontextmanager
async def serve(app, port: int | None = None, lifespan: str = "off"):
    """Serve `app` on 127.0.0.1 (a free port unless given) in this event loop; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_config=None,
                                           access_log=False, timeout_graceful_shutdown=1))
    server.config.setup_event_loop = lambda: None
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
