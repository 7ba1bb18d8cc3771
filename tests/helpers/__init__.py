"""What tests share, imported as `tests.helpers.<module>`; fixtures are in the conftest.py files.

- service: a service in the test's process on a real socket (`Service`, `make_config`).
- processes: real `batchsvc` processes (`serving`, `run_cli`, `refused`).
- raw_http: requests as bytes on a socket, for what a client library will not send.
- responses: the error envelope (`assert_error`), and the shapes of ids and times.
- batches: operation builders, ways to read results back, the bulk-call batches.
- faults: `FaultyStorage`, a real in-memory store that fails, stalls and counts on cue.
- sqlite, embedders, search: small tools for the backend, embedder and search tests.
- retrieval_set: the memories and queries of the retrieval-quality test.
- promtool: Prometheus' checker, or a skip (a failure in CI) where it is missing.
- repository: the root folder, for tests that read the repository's own files.
"""
