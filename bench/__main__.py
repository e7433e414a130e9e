"""`python -m bench`: the whole side-by-side run (see bench/README.md)."""

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
