import asyncio

from techbridge_shared.service import run_service

from .main import build_spec

if __name__ == "__main__":
    # uvloop's event loop costs less per request than asyncio's, where it is installed.
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_service(build_spec)
