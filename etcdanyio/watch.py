"""
Watches: the public handle and its events.

.. code-block:: python

    async with client.watch("config/", prefix=True) as events:
        async for event in events:
            print(event.type, event.kv.key, event.kv.value)

All watches of a client share one gRPC Watch stream (see
:mod:`etcdanyio._watch_stream`). When the body of ``async with`` starts, the
watch is established on the server: every change committed after that point
is delivered, in revision order, each exactly once, even across reconnects.
"""

from ._events import Event, EventType, Filter, WatchBatch
from ._watch import Watch

__all__ = ["Event", "EventType", "Filter", "Watch", "WatchBatch"]
