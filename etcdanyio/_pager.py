"""Walking a large range page by page, at one fixed revision."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from ._requests import check_int

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._kv import KVMixin
    from .types import KeyValue, RangeResult


class RangePager:
    """
    An async iterator over the keys of a range, fetched ``page_size`` at a time.

    Every page is read at the revision of the first one (or the ``revision``
    asked for), so the walk is a consistent snapshot however long it takes,
    and never holds more than one page in memory. If that revision is
    compacted during the walk, :class:`~etcdanyio.CompactedError` is raised.
    """

    def __init__(
        self,
        client: KVMixin,
        start: bytes,
        end: bytes,
        *,
        page_size: int,
        revision: int,
        options: dict[str, Any],
    ) -> None:
        check_int(page_size, "page_size", minimum=1)
        self._client = client
        self._next = start
        self._end = end
        self._page_size = page_size
        #: the revision every page is read at (0 until the first page is read)
        self.revision = revision
        self._options = options
        self._buffer: collections.deque[KeyValue] = collections.deque()
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def _fetch(self) -> RangeResult:
        return await self._client._range(
            self._next, self._end, limit=self._page_size, revision=self.revision, **self._options
        )

    async def __anext__(self) -> KeyValue:
        if not self._buffer:
            if self._done:
                raise StopAsyncIteration
            page = await self._fetch()
            if not self.revision:
                self.revision = page.header.revision
            self._buffer.extend(page.kvs)
            if page.more and page.kvs:
                # Keys come back without the namespace; the next page starts just after.
                self._next = page.kvs[-1].key + b"\0"
            else:
                self._done = True
            if not self._buffer:
                raise StopAsyncIteration
        return self._buffer.popleft()
