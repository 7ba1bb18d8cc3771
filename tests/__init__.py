"""The batchsvc tests. Their folders mirror the code: tests/batch/ tests batchsvc/batch/,
tests/backends/sqlite/ tests backends/sqlite/, and a module here tests the top-level module of
its name (test_config.py: batchsvc/config.py), or the repository as a whole (test_docs.py,
test_layout.py, test_tooling.py, test_public_surface.py, test_version.py). tests/api/ runs the
whole service through HTTP; tests/helpers/ is what tests share (`tests.helpers.<module>`).

Every folder is a package, so pytest imports test modules by dotted name from the repository
root (`tests.batch.test_bulk_calls`): two folders may hold modules of the same name."""
