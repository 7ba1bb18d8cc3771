"""Request decoding (batchsvc/request/): API.md's request-level rules, in their order."""
