"""Helpers shared by the tests: plain modules (constants, builders, context managers).

Fixtures live in the conftest files; everything a test imports by name lives here, so no
test imports a conftest as a module.
"""
