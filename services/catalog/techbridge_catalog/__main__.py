"""`python -m techbridge_catalog`: the shared service runner plus the catalog's expiry sweeper.

The shared `run_service` has no hook for background work besides consumers and the relay, so
this mirrors it and adds the sweeper around the server.
"""

import asyncio
import sys

from techbridge_shared.logs import configure_logging
from techbridge_shared.service import ServiceRuntime
from techbridge_shared.service import create_app as create_service_app
from techbridge_shared.settings import ConfigurationError

from .main import background, build_spec


def main() -> None:
    import uvicorn

    try:
        spec = build_spec()
    except ConfigurationError as exc:
        print(f"catalog: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(spec.name, spec.settings.log_level)

    async def serve() -> int:
        runtime = ServiceRuntime(spec)
        try:
            await runtime.start()
        except ConfigurationError as exc:
            print(f"{spec.name}: cannot start: {exc}", file=sys.stderr)
            return 2
        app = create_service_app(spec, runtime)
        config = uvicorn.Config(app, host=spec.settings.host, port=spec.settings.port, lifespan="off",
                                log_config=None, access_log=False, timeout_graceful_shutdown=10)
        try:
            async with background(runtime):
                await uvicorn.Server(config).serve()
        finally:
            await runtime.stop()
        return 0

    raise SystemExit(asyncio.run(serve()))


if __name__ == "__main__":
    main()
