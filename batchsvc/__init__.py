"""batchsvc: a self-hosted memory store with a batch API.

Public, for third-party backends and embedders, each with an `__all__`: `batchsvc.storage` (the
backend contract), `batchsvc.embedding` (the embedder contract), `batchsvc.errors` (every
exception that crosses a plugin boundary), `batchsvc.paging` (list cursors and pages, as every
backend cuts them), `batchsvc.plugins.options` (reading a plugin's options), `batchsvc.search`
(the ranking toolkit) and `batchsvc.testing` (the conformance kit); see
docs/writing-a-backend.md and docs/embedders.md. The rest (`request`, `batch`, `http` and the
service's plumbing) is internal.
"""

#: The version, in this one place: pyproject.toml reads it (`dynamic`), and `batchsvc --version`
#: reports it. (The OpenAPI document's `info.version` is the document's own version, which
#: OpenAPI keeps distinct from the implementation's.)
__version__ = "0.1.0"
