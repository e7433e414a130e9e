"""Side-by-side benchmark of keyscope against a bare endpoint and the seed design.

`python -m bench` (or `make bench`) runs everything; `python -m bench.micro` runs the
in-process step costs alone. Nothing under `app/`, `providers/` or `containers.py` imports
this package: the bench only consumes keyscope's public pieces.
"""
