"""The app factory: `create_app(config) -> web.Application`."""

from __future__ import annotations

import functools
import gc
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import orjson
from aiohttp import web

from batchsvc.api_keys import KeyStore
from batchsvc.batch.executor import BatchExecutor
from batchsvc.config import Config
from batchsvc.embedding import Embedder
from batchsvc.http.appkeys import (
    API_POLICY,
    BATCH_POLICY,
    CONFIG,
    EMBEDDER,
    EXECUTOR,
    KEY_STORE,
    METRICS,
    OPENAPI,
    RATE_LIMITER,
    STORAGE,
)
from batchsvc.http.handlers import routes
from batchsvc.http.middleware import auth_middleware, envelope_middleware, metrics_middleware
from batchsvc.http.protocol import answer_protocol_errors_in_envelope
from batchsvc.http.responses import json_response
from batchsvc.metered_storage import MeteredStorage
from batchsvc.metrics import Metrics
from batchsvc.model_stamp import check_vectors
from batchsvc.plugins import load_backend, load_embedder
from batchsvc.plugins.starting import started
from batchsvc.ratelimit import InProcessRateLimiter, Policy, RateLimiter
from batchsvc.storage import Storage


def openapi_document() -> dict[str, object]:
    return orjson.loads(files("batchsvc").joinpath("openapi.json").read_bytes())  # type: ignore[no-any-return]


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def create_app(
    config: Config,
    *,
    storage: Storage | None = None,
    rate_limiter: RateLimiter | None = None,
    embedder: Embedder | None = None,
) -> web.Application:
    """Build the service. `storage` and `embedder` override the configured ones (tests wrap
    them); the app enters and leaves both."""
    metrics = Metrics(backend=config.storage.backend, embedder=config.embedder.name)
    backend = MeteredStorage(
        storage or load_backend(config.storage.backend, config.storage.options), metrics
    )
    if embedder is None:
        embedder = load_embedder(config.embedder.name, config.embedder.options)
    app = web.Application(
        middlewares=[metrics_middleware, envelope_middleware, auth_middleware],
        client_max_size=config.limits.max_body_bytes,
        # Bodies reach the handlers as sent; `batchsvc.http.encoding` undoes their coding,
        # so that a bad or unknown one gets the envelope (400, 415), not a crash or a plain
        # text 400 from aiohttp's parser. handler_args reach every server made for this app
        # (web.run_app, web.AppRunner, the test client), over their own arguments.
        handler_args={"auto_decompress": False},
    )
    # Requests aiohttp's parser refuses never reach the middlewares; see the module.
    answer_protocol_errors_in_envelope(app)
    app[CONFIG] = config
    app[METRICS] = metrics
    app[STORAGE] = backend
    app[EXECUTOR] = BatchExecutor(backend, config.limits, embedder=embedder)
    app[KEY_STORE] = KeyStore(Path(config.auth.keys_file))
    app[RATE_LIMITER] = rate_limiter or InProcessRateLimiter()
    limits = config.rate_limit
    app[BATCH_POLICY] = Policy("batch", limits.batch_requests, limits.window_seconds)
    app[API_POLICY] = Policy("api", limits.other_requests, limits.window_seconds)
    app[OPENAPI] = orjson.dumps(openapi_document())
    app.router.add_routes(routes)
    app.router.add_get("/api/v1/openapi.json", _openapi)
    app.cleanup_ctx.append(_storage_lifecycle)
    if embedder is not None:
        app[EMBEDDER] = embedder
        app.cleanup_ctx.append(_embedder_lifecycle)
        app.cleanup_ctx.append(functools.partial(_vectors_match_embedder, backend.inner, embedder))
    return app


async def _storage_lifecycle(app: web.Application) -> AsyncIterator[None]:
    # A store that cannot open raises CannotStart: `batchsvc serve` says why and exits 2.
    storage: Storage = app[STORAGE]
    async with started(f"storage backend {app[CONFIG].storage.backend!r}", storage):
        yield


async def _embedder_lifecycle(app: web.Application) -> AsyncIterator[None]:
    # Loading a model takes CPU time; the embedder does it off the event loop.
    embedder: Embedder = app[EMBEDDER]
    async with started(f"embedder {app[CONFIG].embedder.name!r}", embedder):
        yield


async def _vectors_match_embedder(
    storage: Storage, embedder: Embedder, app: web.Application
) -> AsyncIterator[None]:
    # Once both have started: refuses to serve (VectorsMismatch) with another model's vectors.
    await check_vectors(storage, embedder)
    yield


def freeze_startup_heap(app: web.Application) -> None:
    """For a server process (`batchsvc serve`): once the store and the embedder have started,
    hide every object alive then from the cyclic garbage collector, until shutdown.

    Those objects (modules, the model, the aiohttp machinery, loaded indexes) live as long as
    the process, yet each full collection walked them all: about 6% of the server's CPU on
    the bench_search load, half of it saved. Not in `create_app`: it is process-wide, and a
    process running many apps (the tests) should not collect and freeze at each start."""
    app.cleanup_ctx.append(_frozen_heap)


async def _frozen_heap(app: web.Application) -> AsyncIterator[None]:
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


__all__ = ["create_app", "freeze_startup_heap", "json_response", "openapi_document"]
