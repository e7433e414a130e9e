"""Lifecycle tests: the loopback fakes as upstreams (see tests/support/lifecycle.py)."""

import pytest

from keyscope.app.settings import Settings
from keyscope.providers.fakes import FakeUpstreams
from tests.support.lifecycle import lifecycle_settings


@pytest.fixture
def settings(database_url: str, upstreams: FakeUpstreams) -> Settings:
    upstreams.clear()
    return lifecycle_settings(database_url, upstreams)
