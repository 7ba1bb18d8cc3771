"""The HTTP layer: aiohttp app factory, middleware and handlers."""

from batchsvc.http.app import create_app

__all__ = ["create_app"]
