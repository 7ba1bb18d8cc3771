"""The search toolkit (batchsvc/search/), and semantic and hybrid search end to end."""
