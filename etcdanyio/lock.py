"""
Distributed locks: the fair, revision-ordered recipe of etcd's Go client.

.. code-block:: python

    with anyio.fail_after(5):  # a cancel scope bounds the wait
        async with client.lock("reindex", ttl=10) as lock:
            await client.txn(compare=[lock.is_owner()], success=[txn.put("x", "1")])

A lock named ``N`` lives under the prefix ``N/``; each contender puts the key
``N/<lease ID in hex>`` with its lease, and the one with the lowest create
revision holds the lock. Waiters wait for their immediate predecessor only.
This is the layout of ``etcdctl lock N`` and Go's ``concurrency.NewMutex``, so
they exclude each other both ways.
"""

from ._lock import Lock, LockLostError
from ._public import publish as _publish

__all__ = ["Lock", "LockLostError"]

_publish(__name__, globals())
