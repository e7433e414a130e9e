"""Security primitives: envelope encryption and token verification (no settings, no I/O)."""
