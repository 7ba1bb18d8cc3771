"""The search toolkit for backends that rank in memory: lexical (BM25), vectors (cosine) and
the ranking that combines them under a search's filters, limit and threshold."""
