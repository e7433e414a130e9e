"""ASGI modules, one per benchmarked design; each serves `GET /bench/...` and `/bench/stats`."""
