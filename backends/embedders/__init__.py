"""The bundled embedders, registered under `batchsvc.embedders`: `wordllama` (the default,
offline) and `minilm` (optional extra), with the threaded lifecycle they share.

Internal: the entry-point names and options are stable, the modules are not."""
