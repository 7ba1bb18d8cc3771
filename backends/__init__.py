"""The backends and embedders shipped with batchsvc, installed as `batchsvc_backends`.

Each is registered under an entry-point group (`batchsvc.backends`: `memory`, `sqlite`;
`batchsvc.embedders`: `wordllama`, `minilm`). Those names and each plugin's config options are
the stable surface; the modules here are internal, with no stability promise: import them
only to read how a backend is built (docs/writing-a-backend.md).
"""
