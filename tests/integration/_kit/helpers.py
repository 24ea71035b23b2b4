"""Small helpers the integration tests share (never imports etcdanyio's client)."""

from __future__ import annotations

import functools
import socket
import subprocess
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from etcdanyio.testing import find_etcd_binary

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from anyio.abc import Process

T = TypeVar("T")

#: etcd flags for a fast, quiet member (as etcdanyio.testing uses)
FAST = [
    *("--heartbeat-interval", "25", "--election-timeout", "250", "--unsafe-no-fsync"),
    *("--log-level", "error", "--logger", "zap", "--log-outputs", "stderr"),
]
#: membership changes right after a cluster starts need this on etcd 3.5
NO_STRICT_RECONFIG = ["--strict-reconfig-check=false"]


async def ask(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (oracle, harness) in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))


async def until(what: str, probe: Callable[[], Awaitable[T | None]], within: float = 10.0) -> T:
    """Poll the async ``probe`` until it returns something truthy, for at most ``within`` s."""
    with anyio.move_on_after(within):
        while True:
            if result := await probe():
                return result
            await anyio.sleep(0.02)  # the poll interval; the deadline bounds the wait
    raise TimeoutError(f"{what}: not within {within} s")


def free_ports(count: int) -> list[int]:
    """``count`` free loopback ports (bound, read, closed)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@asynccontextmanager
async def run_etcd(argv: list[str], log: Path) -> AsyncIterator[Process]:
    """An etcd process for the block's duration; killed and reaped on exit."""
    async with await anyio.open_file(log, "ab") as out:  # the child keeps its own descriptor
        process = await anyio.open_process(
            [find_etcd_binary(), *argv, *FAST],
            stdin=subprocess.DEVNULL,
            stdout=out.wrapped,
            stderr=out.wrapped,
        )
    try:
        yield process
    finally:
        with anyio.CancelScope(shield=True), anyio.fail_after(10):
            process.kill()
            await process.wait()
            await process.aclose()
