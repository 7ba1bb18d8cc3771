"""Typed keys for what the app and each request carry: every `AppKey` and `RequestKey` of the
service, here alone."""

from __future__ import annotations

from aiohttp import web

from batchsvc.api_keys import KeyStore
from batchsvc.batch.executor import BatchExecutor
from batchsvc.config import Config
from batchsvc.embedding import Embedder
from batchsvc.metrics import Metrics
from batchsvc.ratelimit import Policy, RateLimiter
from batchsvc.storage import Storage

CONFIG = web.AppKey("config", Config)
STORAGE = web.AppKey("storage", Storage)
EXECUTOR = web.AppKey("executor", BatchExecutor)
KEY_STORE = web.AppKey("key_store", KeyStore)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
BATCH_POLICY = web.AppKey("batch_policy", Policy)
API_POLICY = web.AppKey("api_policy", Policy)
METRICS = web.AppKey("metrics", Metrics)
EMBEDDER = web.AppKey("embedder", Embedder)
OPENAPI = web.AppKey("openapi", bytes)  # the served document, encoded once

# Request keys: typed like the app's (aiohttp 3.14 warns about plain string keys).
STARTED = web.RequestKey("started", float)  # time.monotonic() when the request arrived
TENANT = web.RequestKey("tenant", str)
RATE_HEADERS = web.RequestKey("rate_headers", dict[str, str])
