"""
The pytest plugin of :mod:`etcdanyio.testing` (entry point ``etcdanyio``).

Fixtures, all prefixed ``etcd_`` so that they cannot shadow a suite's own names:

- ``etcd_server``: one :class:`~etcdanyio.testing.EtcdServer` started for the session;
- ``etcd_endpoints``: the endpoints tests should use: ``--etcd-endpoints`` /
  ``$ETCDANYIO_TEST_ENDPOINTS`` when given (an etcd you run), else ``etcd_server``'s;
- ``etcd_client``: a :class:`~etcdanyio.Client` per test, confined by ``namespace=`` to a
  prefix of its own, which is deleted when the test ends;
- ``etcd_cluster``: a fresh three-member :class:`~etcdanyio.testing.EtcdCluster` per test.

``etcd_client`` is an async fixture run by anyio's pytest plugin on the test's
``anyio_backend`` (asyncio and trio alike); pytest-asyncio is not supported. Opt out with
``-p no:etcdanyio``. Kept apart so that importing ``etcdanyio.testing`` never imports pytest.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import pytest

from .testing import EtcdCluster, EtcdServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from ._client import Client

#: the environment variable naming an existing etcd (comma-separated endpoints)
ENDPOINTS_ENV = "ETCDANYIO_TEST_ENDPOINTS"
#: the prefix under which each ``etcd_client`` gets a namespace of its own
NAMESPACE_ROOT = "etcdanyio-test/"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etcdanyio", "etcd fixtures (etcdanyio)")
    group.addoption(
        "--etcd-endpoints",
        default=None,
        metavar="URLS",
        help=(
            "comma-separated endpoints of an existing etcd for etcd_endpoints and etcd_client, "
            f"instead of starting one (default: ${ENDPOINTS_ENV})"
        ),
    )


def _configured_endpoints(config: pytest.Config) -> list[str] | None:
    value = config.getoption("etcd_endpoints", None) or os.environ.get(ENDPOINTS_ENV, "")
    endpoints = [e.strip() for e in str(value).split(",") if e.strip()]
    return endpoints or None


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One etcd member started for the session (always started, even with --etcd-endpoints)."""
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="session")
def etcd_endpoints(request: pytest.FixtureRequest) -> list[str]:
    """The endpoints of the etcd under test: ``--etcd-endpoints``, or ``etcd_server``'s."""
    configured = _configured_endpoints(request.config)
    if configured is not None:
        return configured
    server: EtcdServer = request.getfixturevalue("etcd_server")
    return server.endpoints


@pytest.fixture
async def etcd_client(
    etcd_endpoints: list[str], anyio_backend: object, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    """
    A client of ``etcd_endpoints`` confined to a namespace of its own
    (``etcdanyio-test/<random>/``): tests cannot see each other's keys, and the namespace is
    deleted when the test ends.
    """
    from .client import open_etcd  # imported when used: the plugin loads in every suite

    namespace = f"{NAMESPACE_ROOT}{uuid.uuid4().hex}/"
    async with open_etcd(etcd_endpoints, namespace=namespace, timeout=30) as client:
        try:
            yield client
        finally:
            await client.delete_prefix(b"")


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A fresh three-member cluster for this test."""
    with EtcdCluster(3) as cluster:
        yield cluster
