"""batchsvc: a self-hosted memory store with a batch API."""

__version__ = "0.1.0"
