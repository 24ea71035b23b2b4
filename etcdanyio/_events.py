"""
The data of watches: events, their types, filters, and batches.

Plain immutable values, shared by the wire codec (which builds :class:`Event`), the
watch dispatch and the public handle; this module imports no API module, so the
codec can build events without importing the client. :mod:`etcdanyio.watch` re-exports
them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ._grpc._status import NamedIntEnum

if TYPE_CHECKING:
    from .types import KeyValue

__all__ = ["Event", "EventType", "Filter", "WatchBatch"]


class EventType(NamedIntEnum):
    """What happened to a key."""

    PUT = 0
    DELETE = 1


class Filter(NamedIntEnum):
    """Events the server should not send (``filters=``)."""

    NO_PUT = 0
    NO_DELETE = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One change to one key."""

    type: EventType
    #: the key after the change (for a DELETE: the key, with ``mod_revision`` of the delete)
    kv: KeyValue
    #: the key before the change, when the watch asked for ``prev_kv=True``
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        """The revision of the change."""
        return self.kv.mod_revision


@dataclasses.dataclass(frozen=True, slots=True)
class WatchBatch:
    """
    The events of one server response, delivered together (all events of one
    revision are always in one batch), or a progress notification (no events).
    """

    events: list[Event]
    #: every change up to this revision has been delivered
    revision: int

    @property
    def is_progress(self) -> bool:
        """Whether this is a progress notification (a batch without events)."""
        return not self.events
