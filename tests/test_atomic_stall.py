"""Moved to tests/backends/sqlite/test_atomic_stall.py, where the tests mirror the code. No test
here: this file only keeps the path that README.md cites, until it is updated."""
