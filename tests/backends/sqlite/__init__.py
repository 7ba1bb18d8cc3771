"""The SQLite backend (backends/sqlite/), on real files and real processes."""
