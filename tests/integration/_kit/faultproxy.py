"""
A user-space TCP fault proxy (reliability.md §2.3): one per member, on loopback.

The client dials the proxy; the proxy dials the member and pumps bytes both ways. Faults are
switched on and off from the test while connections are open:

- ``set_mode("pass")``: forward at once (the default);
- ``set_mode("delay", 0.2)``: forward every chunk ``delay`` seconds late;
- ``set_mode("stall")``: stop reading, so the bytes wait in kernel buffers (and are forwarded
  once the mode changes back);
- ``set_mode("blackhole")``: read and drop everything, both ways;
- ``refuse = True``: accept new connections, then close them at once (the client sees EOF);
- ``cut()``: close every open connection, FIN both ways;
- ``reset()``: close every open connection with ``SO_LINGER(1, 0)``: RST both ways.

``conns`` (open connection pairs), ``accepted`` (connections accepted so far), ``bytes_up``
(client to member) and ``bytes_down`` (member to client) let tests assert on the client's
behaviour (no hot reconnect loop, connection closed on exit).

Each accepted connection runs in its own cancel scope with two pump tasks; EOF or an error on
either side cancels the pair, so nothing stays half open. The proxy's task group ends cleanly
when its scope is cancelled, on asyncio and trio::

    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        ...
        tg.cancel_scope.cancel()

or, simply, ``async with open_fault_proxy(member_url) as proxy: ... proxy.endpoint ...``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["FaultProxy", "Mode", "open_fault_proxies", "open_fault_proxy"]

Mode = Literal["pass", "delay", "stall", "blackhole"]
_MODES = ("pass", "delay", "stall", "blackhole")
_CHUNK = 65536
_LINGER_RST = struct.pack("ii", 1, 0)


def _host_port(target: str) -> tuple[str, int]:
    """``(host, port)`` from ``http://127.0.0.1:PORT`` or ``127.0.0.1:PORT``."""
    text = target.partition("://")[2] if "://" in target else target
    host, _, port = text.rstrip("/").rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the fault proxy is for loopback targets only, got {target!r}")
    return host, int(port)


class _Pair:
    """One proxied connection: the client side, the member side, and their cancel scope."""

    def __init__(self, client: anyio.abc.SocketStream) -> None:
        self.client = client
        self.upstream: anyio.abc.SocketStream | None = None
        self.scope = anyio.CancelScope()
        self.rst = False

    def close(self, *, rst: bool) -> None:
        self.rst = self.rst or rst
        self.scope.cancel()


class FaultProxy:
    """
    A TCP proxy from ``127.0.0.1:<port>`` to ``target`` (a loopback member URL).

    :param target: ``http://127.0.0.1:PORT`` (the member's client URL) or ``127.0.0.1:PORT``
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._target_host, self._target_port = _host_port(target)
        #: the port the proxy listens on (0 until :meth:`serve` has started)
        self.port = 0
        self.mode: Mode = "pass"
        #: seconds each chunk is held in ``"delay"`` mode
        self.delay = 0.0
        #: accept connections, then close them at once
        self.refuse = False
        #: the open connection pairs
        self.conns: set[_Pair] = set()
        #: connections accepted so far (refused ones included)
        self.accepted = 0
        #: bytes forwarded from clients to the member
        self.bytes_up = 0
        #: bytes forwarded from the member to clients
        self.bytes_down = 0
        self._mode_changed = anyio.Event()

    def __repr__(self) -> str:
        return (
            f"<FaultProxy :{self.port} -> {self.target} mode={self.mode} refuse={self.refuse} "
            f"conns={len(self.conns)} accepted={self.accepted}>"
        )

    @property
    def endpoint(self) -> str:
        """The URL a client should dial: ``http://127.0.0.1:<port>``."""
        if not self.port:
            raise RuntimeError("the proxy is not serving yet")
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ controls

    def set_mode(self, mode: Mode, delay: float = 0.0) -> None:
        """Switch every connection, open or future, to ``mode``."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if mode == "delay" and delay <= 0:
            raise ValueError("delay mode needs a positive delay")
        self.mode, self.delay = mode, delay
        event, self._mode_changed = self._mode_changed, anyio.Event()
        event.set()

    def cut(self) -> None:
        """Close every open connection: FIN both ways."""
        for pair in list(self.conns):
            pair.close(rst=False)

    def reset(self) -> None:
        """Close every open connection with ``SO_LINGER(1, 0)``: RST both ways."""
        for pair in list(self.conns):
            pair.close(rst=True)

    def heal(self) -> None:
        """Back to ``pass``, accepting connections (open ones are kept)."""
        self.refuse = False
        self.set_mode("pass")

    # ------------------------------------------------------------------- serving

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on a free loopback port, report it with ``task_status``, serve until cancelled."""
        multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with multi, anyio.create_task_group() as tg:
            listener = cast("anyio.abc.SocketListener", multi.listeners[0])
            self.port = listener.extra(SocketAttribute.local_port)
            task_status.started(self.port)
            while True:
                client = await listener.accept()
                tg.start_soon(self._handle, client)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        if self.refuse:
            await anyio.aclose_forcefully(client)
            return
        pair = _Pair(client)
        self.conns.add(pair)
        try:
            with pair.scope:
                try:
                    pair.upstream = await anyio.connect_tcp(self._target_host, self._target_port)
                except OSError:
                    pair.rst = True  # the member is down: the client sees a reset, as from it
                    return
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, pair, client, pair.upstream, True)
                    tg.start_soon(self._pump, pair, pair.upstream, client, False)
        finally:
            # Shielded: a cancellation of the whole proxy must not skip the second close.
            with anyio.CancelScope(shield=True):
                for stream in (client, pair.upstream):
                    if stream is not None:
                        if pair.rst:
                            _set_linger_rst(stream)
                        await anyio.aclose_forcefully(stream)
            self.conns.discard(pair)

    async def _unstalled(self) -> None:
        while self.mode == "stall":
            await self._mode_changed.wait()

    async def _pump(
        self,
        pair: _Pair,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        up: bool,
    ) -> None:
        try:
            while True:
                await self._unstalled()
                data = await source.receive(_CHUNK)
                await self._unstalled()  # read just before a stall: hold it
                if self.mode == "blackhole":
                    continue
                if self.mode == "delay":
                    await anyio.sleep(self.delay)
                await sink.send(data)
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        pair.scope.cancel()  # EOF or error on one side ends both directions


def _set_linger_rst(stream: anyio.abc.SocketStream) -> None:
    with contextlib.suppress(OSError):
        raw = stream.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


@asynccontextmanager
async def open_fault_proxies(*targets: str) -> AsyncIterator[list[FaultProxy]]:
    """Serve one :class:`FaultProxy` per target for the block; every connection closes on exit."""
    async with anyio.create_task_group() as tg:
        proxies = [FaultProxy(target) for target in targets]
        for proxy in proxies:
            await tg.start(proxy.serve)
        try:
            yield proxies
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def open_fault_proxy(target: str) -> AsyncIterator[FaultProxy]:
    """Serve one :class:`FaultProxy` to ``target`` for the block."""
    async with open_fault_proxies(target) as proxies:
        yield proxies[0]
