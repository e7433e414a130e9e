"""HTTP routes other than the keys API (which lives with the key store in app/keys)."""
