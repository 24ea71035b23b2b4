from __future__ import annotations

import pytest
from hypothesis import settings

# Select with ``pytest --hypothesis-profile=ci``; the default profile is hypothesis's own.
settings.register_profile("ci", max_examples=500, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None)


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Run every async test under asyncio (debug mode) and trio."""
    return request.param
