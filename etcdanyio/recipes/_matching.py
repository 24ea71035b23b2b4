"""
Watches filtered by a key pattern: etcd3-py's ``Watcher.onEvent(regex, callback)`` and
``watch_once(regex)``, as an async iterator behind ``async with`` instead of callbacks on a
daemon thread.

etcd itself filters only by key range and event type, so the range is watched on the server
and the pattern is applied here: narrow the range (``key``, ``prefix``) as much as you can.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from typing_extensions import Self

    from ..client import Client
    from ..watch import Event, Filter, Watch

__all__ = ["KeyPattern", "MatchingWatch", "watch_matching"]

#: a regular expression: ``bytes`` ones match the raw key, ``str`` ones the key decoded as UTF-8
KeyPattern = str | bytes | re.Pattern[str] | re.Pattern[bytes]


def key_matcher(pattern: object) -> Callable[[bytes], bool]:
    """A predicate on raw keys: ``pattern.match`` (anchored at the key's start, as etcd3-py)."""
    if isinstance(pattern, (str, bytes)):
        pattern = re.compile(pattern)
    if not isinstance(pattern, re.Pattern):
        raise TypeError(
            f"pattern must be a str or bytes regular expression, got {pattern!r} "
            f"({type(pattern).__name__})"
        )
    if isinstance(pattern.pattern, bytes):
        match_bytes = pattern.match
        return lambda key: match_bytes(key) is not None
    match_text = pattern.match

    def match(key: bytes) -> bool:
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            return False  # a key that is not text never matches a text pattern
        return match_text(text) is not None

    return match


class MatchingWatch:
    """
    The events of a watch whose key matches a pattern; iterate it (``async for``, or
    ``await anext(events)`` for the first one).
    """

    def __init__(self, watch: Watch, match: Callable[[bytes], bool]) -> None:
        #: the underlying watch (``.revision``, ``request_progress()``)
        self.watch = watch
        self._match = match

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while True:
            event = await self.watch.__anext__()
            if self._match(event.kv.key):
                return event


@asynccontextmanager
async def watch_matching(
    client: Client,
    key: str | bytes,
    pattern: KeyPattern,
    *,
    prefix: bool = True,
    start_revision: int | None = None,
    prev_kv: bool = False,
    filters: Iterable[Filter | str] = (),
) -> AsyncIterator[MatchingWatch]:
    """
    Watch the keys under ``key`` (or ``key`` alone with ``prefix=False``) and deliver only the
    events whose key matches ``pattern``.

    .. code-block:: python

        async with watch_matching(client, "jobs/", rb"jobs/[0-9]+/done$") as events:
            async for event in events:
                ...

    Everything :meth:`Client.watch` promises holds: the watch is established when the block
    starts, events come in revision order, each once, across reconnects.

    :param key: the key or prefix watched on the server (keys are as the client sees them,
        without its namespace)
    :param pattern: a regular expression (``str`` or ``bytes``, or compiled), applied with
        ``match``: anchored at the start of the key, not at its end (add ``$``). A ``str``
        pattern never matches a key that is not valid UTF-8
    :param prefix: watch every key that starts with ``key`` (the default)
    :param start_revision: deliver history from this revision on (``None``: from now)
    :param prev_kv: give each event the key as it was before
    :param filters: ``Filter.NO_PUT`` / ``Filter.NO_DELETE``, applied by the server
    :raises TypeError: if ``pattern`` is not a regular expression (before any I/O)

    .. versionadded:: 0.1
    """
    match = key_matcher(pattern)
    async with client.watch(
        key, prefix=prefix, start_revision=start_revision, prev_kv=prev_kv, filters=filters
    ) as watch:
        yield MatchingWatch(watch, match)
