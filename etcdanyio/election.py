"""
Leader elections: the recipe of etcd's Go client (``concurrency.NewElection``).

.. code-block:: python

    election = client.election("service-leader")
    async with election.campaign(b"node-1", ttl=10) as leadership:  # waits to win
        await leadership.proclaim(b"node-1 v2")
    # resigned on exit

    async with election.observe() as leaders:  # each leader change; None: nobody leads
        async for kv in leaders:
            ...

Candidates queue under ``name + "/"`` exactly as for a lock; the key with the
lowest create revision leads and its value is the leader's proclamation. The
same keys as ``etcdctl elect`` and Go's election, so they interoperate.
"""

from ._election import (
    Election,
    Leadership,
    LeadershipLostError,
    NotLeaderError,
    Observation,
)
from ._election_rpc import LeaderKey
from ._public import publish as _publish

__all__ = [
    "Election",
    "LeaderKey",
    "Leadership",
    "LeadershipLostError",
    "NotLeaderError",
    "Observation",
]

_publish(__name__, globals())
