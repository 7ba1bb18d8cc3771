"""Moved to tests/http/test_protocol_errors.py, where the tests mirror the code. No test here:
this file only keeps the path that docs/api.md and batchsvc/http/protocol.py cite, until they
are updated."""
