"""
The one hook point where every RPC is seen, and the client's counters.

Every unary call and every stream of a client goes through :class:`Rpc` records when at least
one observer is registered (``open_etcd(observers=[...])``, or OpenTelemetry, see
``_otel.py``); with none, the call path checks one attribute and does nothing else.

An observer implements any of ``rpc_started``, ``rpc_event`` and ``rpc_finished`` (the
:class:`RpcObserver` protocol). They run in the task that makes the call, so context
variables (an OpenTelemetry span, a request ID) are the caller's. An exception raised by an
observer is logged and never reaches the call.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger("etcdanyio.telemetry")

__all__ = ["ClientStatistics", "Rpc", "RpcObserver", "WatchLag"]


class Rpc:
    """
    One RPC as observers see it. Filled in as the call goes: ``endpoint`` once a connection
    is chosen, ``attempts`` per try, ``status``/``error``/``response_size``/``duration`` when it
    ends. Observers may keep their own state in :attr:`state` (keyed by themselves).
    """

    __slots__ = (
        "_observers",
        "attempts",
        "duration",
        "endpoint",
        "error",
        "kind",
        "method",
        "path",
        "request_size",
        "response_size",
        "service",
        "start",
        "state",
        "status",
    )

    def __init__(
        self, observers: Sequence[RpcObserver], path: str, kind: str, request_size: int
    ) -> None:
        self._observers = observers
        #: the gRPC path, ``/etcdserverpb.KV/Range``
        self.path = path
        service, _, method = path.lstrip("/").partition("/")
        #: ``etcdserverpb.KV``
        self.service = service
        #: ``Range``
        self.method = method
        #: ``"unary"`` or ``"stream"``
        self.kind = kind
        #: bytes of the request message (0 for a stream)
        self.request_size = request_size
        #: bytes of the response message (0 until it ends, and for a stream)
        self.response_size = 0
        #: ``http(s)://host:port`` of the member of the last attempt ("" before one)
        self.endpoint = ""
        #: tries so far (retries and re-authentication included)
        self.attempts = 0
        #: the gRPC status code when it ended (0 OK; ``None`` without one: transport, cancel)
        self.status: int | None = None
        #: what the call raised (an ``EtcdError``, ``TimeoutError``, a cancellation...)
        self.error: BaseException | None = None
        #: ``anyio.current_time()`` at the start
        self.start = anyio.current_time()
        #: seconds, once finished
        self.duration = 0.0
        #: the observers' own state
        self.state: dict[object, Any] = {}

    def __repr__(self) -> str:
        return (
            f"Rpc({self.path!r}, endpoint={self.endpoint!r}, attempts={self.attempts}, "
            f"status={self.status}, error={self.error!r})"
        )

    # -- called by the client and the channel

    def started(self) -> None:
        for observer in self._observers:
            _guard(observer, "rpc_started", self)

    def event(self, name: str, **attributes: object) -> None:
        """A retry, a failover, a re-authentication: something that happened during the call."""
        for observer in self._observers:
            _guard(observer, "rpc_event", self, name, attributes)

    def finished(self, error: BaseException | None, response_size: int = 0) -> None:
        self.duration = anyio.current_time() - self.start
        self.response_size = response_size
        if error is None:
            self.status = 0
        else:
            self.error = error
            status = getattr(error, "status", None)
            self.status = int(status) if status is not None else None
        for observer in self._observers:
            _guard(observer, "rpc_finished", self)


def _guard(observer: RpcObserver, method: str, *args: object) -> None:
    try:
        getattr(observer, method)(*args)
    except Exception:
        logger.exception("observer %r failed in %s", observer, method)


class RpcObserver:
    """
    Sees every RPC of a client: subclass it and override what you need, then pass it as
    ``open_etcd(observers=[...])``. Each method runs in the task that makes the call; keep it
    short (it is on the call path), and keep per-call state in ``rpc.state``.
    """

    def rpc_started(self, rpc: Rpc) -> None:
        """Before the first attempt."""

    def rpc_event(self, rpc: Rpc, name: str, attributes: dict[str, object]) -> None:
        """
        Something that happened during the call: ``"retry"`` (``attempt``, ``error``,
        ``delay``), ``"failover"`` (``from_endpoint``), ``"reauthenticate"``.
        """

    def rpc_finished(self, rpc: Rpc) -> None:
        """Once, with ``status``, ``error``, ``response_size`` and ``duration`` set."""


@dataclasses.dataclass(frozen=True, slots=True)
class WatchLag:
    """The watch that lags most: how far behind etcd and how much it holds for its consumer."""

    #: the watched key (or range start), without the namespace
    key: bytes
    #: events buffered for the consumer, not read yet
    buffered: int
    #: whether it is paused on the server because its buffer is full
    suspended: bool
    #: the next revision it will deliver
    next_revision: int


@dataclasses.dataclass(frozen=True, slots=True)
class ClientStatistics:
    """
    A snapshot of a client (``client.statistics()``, anyio's ``statistics()`` convention).
    Counters count since the client was opened.
    """

    #: the endpoints the client uses
    endpoints: tuple[str, ...]
    #: the endpoint of the connection new calls go to ("" when none is open)
    connected_endpoint: str
    #: HTTP/2 connections open (the pinned one, and members asked directly)
    connections: int
    #: unary calls and streams open on the pinned connection
    calls_in_flight: int
    #: watches open
    watches: int
    #: the watch with the most events waiting for its consumer (``None`` without watches)
    most_lagging_watch: WatchLag | None
    #: leases kept alive
    leases_kept_alive: int
    #: seconds until the nearest local lease deadline (``None`` without leases)
    nearest_lease_deadline: float | None
    #: connections made (the first one included)
    connects: int
    #: moves away from a member that answered "unavailable" or failed
    failovers: int
    #: times the client authenticated again (expired token, auth store changes)
    reauthentications: int
    #: times the watch stream was opened again and its watches resumed
    watch_resumes: int
    #: watches cancelled by etcd because their revision was compacted
    watch_compactions: int
    #: clean-ups left to the background, not finished yet
    pending_cleanups: int


@dataclasses.dataclass
class Counters:
    """The client's counters (mutable; :class:`ClientStatistics` is the snapshot)."""

    connects: int = 0
    failovers: int = 0
    reauthentications: int = 0
    watch_resumes: int = 0
    watch_compactions: int = 0
