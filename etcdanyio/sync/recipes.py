"""
The recipes of :mod:`etcdanyio.recipes` for the blocking client: the same keys and behaviour,
``with`` blocks for the scopes. Pass an ``etcdanyio.sync.Client``.

.. code-block:: python

    from etcdanyio.sync.recipes import Queue, RWLock

    queue = Queue(client, "jobs")
    queue.enqueue("job-1")
    item = queue.dequeue(timeout=5)
    with RWLock(client, "catalog").read():
        ...

``stm()`` has no blocking counterpart (its transaction function runs on the event loop).
"""

from .._sync_recipes import Barrier as Barrier
from .._sync_recipes import DoubleBarrier as DoubleBarrier
from .._sync_recipes import DoubleBarrierEntry as DoubleBarrierEntry
from .._sync_recipes import MatchingWatch as MatchingWatch
from .._sync_recipes import PriorityQueue as PriorityQueue
from .._sync_recipes import Queue as Queue
from .._sync_recipes import RWLock as RWLock
from .._sync_recipes import RWLockHold as RWLockHold
from .._sync_recipes import watch_matching as watch_matching
from ..recipes import BarrierFullError as BarrierFullError

__all__ = [
    "Barrier",
    "BarrierFullError",
    "DoubleBarrier",
    "DoubleBarrierEntry",
    "MatchingWatch",
    "PriorityQueue",
    "Queue",
    "RWLock",
    "RWLockHold",
    "watch_matching",
]
