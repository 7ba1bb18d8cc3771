"""Moved to tests/backends/sqlite/test_conformance.py, where the tests mirror the code. No test
here: this file only keeps the path that docs/writing-a-backend.md cites, until it is
updated."""
