"""Moved to tests/backends/embedders/test_embedders.py, where the tests mirror the code. No test
here: this file only keeps the path that docs/embedders.md and backends/embedders/token_mean.py
cite, until they are updated."""
