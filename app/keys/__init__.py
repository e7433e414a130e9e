"""Stored provider keys: table, API schemas, store (queries + cache) and routes, the key
lifecycle, and the keys one request may use (`UserKeys`, `KeyPolicy`, `Secret`)."""
