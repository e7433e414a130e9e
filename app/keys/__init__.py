"""Stored provider keys: table, API schemas, store (queries + cache) and routes."""
