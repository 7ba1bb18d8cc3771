"""Moved to tests/backends/test_memory.py, where the tests mirror the code. No test here: this
file only keeps the path that docs/writing-a-backend.md cites, until it is updated."""
