"""The HTTP layer (batchsvc/http/): codings, protocol errors and hang-ups, as raw bytes."""
