"""
A blocking etcd client for threaded code: the async client on an event loop thread.

.. code-block:: python

    import etcdanyio.sync

    with etcdanyio.sync.open_etcd("http://127.0.0.1:2379", timeout=5) as client:
        client.put("k", "v")
        kv = client.get("k")
        with client.watch("config/", prefix=True) as events:
            event = events.get(timeout=1.0)  # None on timeout

Every method of :class:`etcdanyio.Client` is here with the same parameters and result types
(plus ``timeout=``); scopes are ``with`` blocks. See ``docs/sync.md``.
"""

from .._sync_client import Client as Client
from .._sync_client import open_etcd as open_etcd
from .._sync_loop import ClientClosedError as ClientClosedError
from .._sync_loop import ForkedClientError as ForkedClientError
from .._sync_reads import Mirror as Mirror
from .._sync_reads import RangeIterator as RangeIterator
from .._sync_reads import Watch as Watch
from .._sync_scopes import Campaign as Campaign
from .._sync_scopes import Election as Election
from .._sync_scopes import Leadership as Leadership
from .._sync_scopes import Lease as Lease
from .._sync_scopes import Lock as Lock
from .._sync_scopes import Observation as Observation

__all__ = [
    "Campaign",
    "Client",
    "ClientClosedError",
    "Election",
    "ForkedClientError",
    "Leadership",
    "Lease",
    "Lock",
    "Mirror",
    "Observation",
    "RangeIterator",
    "Watch",
    "open_etcd",
]
