"""The whole service through its HTTP API: endpoints, tenants, the OpenAPI document, retrieval."""
