"""Moved to tests/api/test_retrieval.py, where the tests mirror the code. No test here: this
file only keeps the path that README.md cites, until it is updated."""
