"""
Recipes beyond locks and elections, built only on the public client API.

They follow the recipes of etcd's Go client (``concurrency.NewSTM`` and the
``client/v3/experimental/recipes`` package) and use the same keys, so Go and
Python processes can share them:

- :func:`stm`: software transactional memory, retried until it commits;
- :class:`RWLock`: a fair read/write lock;
- :class:`Barrier` and :class:`DoubleBarrier`: a gate, and a rendezvous of N;
- :class:`Queue` and :class:`PriorityQueue`: work queues, each item delivered once;
- :func:`watch_matching`: a watch that delivers only the keys matching a regular expression.

.. code-block:: python

    from etcdanyio.recipes import RWLock, Queue, stm

    async with RWLock(client, "catalog").read():
        ...
"""

from ._barrier import Barrier as Barrier
from ._barrier import BarrierFullError as BarrierFullError
from ._barrier import DoubleBarrier as DoubleBarrier
from ._barrier import DoubleBarrierEntry as DoubleBarrierEntry
from ._matching import KeyPattern as KeyPattern
from ._matching import MatchingWatch as MatchingWatch
from ._matching import watch_matching as watch_matching
from ._queue import PriorityQueue as PriorityQueue
from ._queue import Queue as Queue
from ._rwlock import RWLock as RWLock
from ._rwlock import RWLockHold as RWLockHold
from ._stm import STM as STM
from ._stm import Isolation as Isolation
from ._stm import STMConflictError as STMConflictError
from ._stm import stm as stm

__all__ = [
    "STM",
    "Barrier",
    "BarrierFullError",
    "DoubleBarrier",
    "DoubleBarrierEntry",
    "Isolation",
    "KeyPattern",
    "MatchingWatch",
    "PriorityQueue",
    "Queue",
    "RWLock",
    "RWLockHold",
    "STMConflictError",
    "stm",
    "watch_matching",
]


def _fixup_module_metadata() -> None:
    # Tracebacks and reprs say etcdanyio.recipes.RWLock, not etcdanyio.recipes._rwlock.…
    import contextlib  # here: the module's globals are its API

    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith(__name__ + "."):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_fixup_module_metadata()
del _fixup_module_metadata
