"""The web console served by the gateway under /console (see `router` for how it is built)."""

from .router import router

__all__ = ["router"]
