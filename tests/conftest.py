from __future__ import annotations

import sys

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

# Saved examples replay only on the Python that saved them: a strategy whose draws depend on
# bytes the library produces (h2's frames, say) draws differently on another version, and
# hypothesis reports that as a flaky strategy (the nox matrix shares this checkout).
_EXAMPLES = DirectoryBasedExampleDatabase(
    ".hypothesis/examples-py%d%d" % sys.version_info[:2]  # noqa: UP031
)
settings.register_profile("default", database=_EXAMPLES)
settings.load_profile("default")
# Select with ``pytest --hypothesis-profile=ci``.
settings.register_profile(
    "ci", max_examples=500, deadline=None, print_blob=True, database=_EXAMPLES
)
settings.register_profile("dev", max_examples=50, deadline=None, database=_EXAMPLES)


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Run every async test under asyncio (debug mode) and trio."""
    return request.param
