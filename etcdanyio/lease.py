"""
Leases as scopes.

.. code-block:: python

    async with client.lease(ttl=10) as lease:  # granted; kept alive meanwhile
        await client.put("service/a", "10.0.0.1", lease=lease)
    # revoked on exit

If etcd reports the lease gone while the block runs (expired, revoked
elsewhere), or no keepalive was answered within its TTL, the block is
cancelled and :class:`~etcdanyio.LeaseExpiredError` is raised from the
``async with`` as itself.
"""

from ._lease import Lease
from ._public import publish as _publish
from ._types import LeaseGrantResult, LeaseTimeToLiveResult

__all__ = ["Lease", "LeaseGrantResult", "LeaseTimeToLiveResult"]

_publish(__name__, globals())
