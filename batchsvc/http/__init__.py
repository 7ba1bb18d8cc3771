"""The HTTP layer: aiohttp app factory, middleware and handlers.

Internal: no stability promise beyond the HTTP API itself (docs/spec/API.md, docs/api.md and
the OpenAPI document). Backends and embedders import nothing from here.
"""

from batchsvc.http.app import create_app

__all__ = ["create_app"]
