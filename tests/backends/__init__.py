"""The shipped backends (backends/, installed as batchsvc_backends); memory here."""
