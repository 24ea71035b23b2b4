"""
The pytest plugin of :mod:`etcdanyio.testing` (entry point ``etcdanyio``).

Kept apart so that importing ``etcdanyio.testing`` never imports pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .testing import EtcdCluster, EtcdServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdServer]:
    """One etcd member shared by the session: inject no faults into it."""
    with EtcdServer() as server:
        yield server


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A fresh three-member cluster for this test."""
    with EtcdCluster(3) as cluster:
        yield cluster
