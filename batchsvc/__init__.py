"""batchsvc: a self-hosted memory store with a batch API."""

#: The version, in this one place: pyproject.toml reads it (`dynamic`), and `batchsvc --version`
#: reports it. (The OpenAPI document's `info.version` is the document's own version, which
#: OpenAPI keeps distinct from the implementation's.)
__version__ = "0.1.0"
