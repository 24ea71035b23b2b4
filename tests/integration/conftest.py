from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING

import anyio
import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def _link(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""  # closed between listdir and readlink


def _open_sockets() -> int:
    return sum(_link(fd).startswith("socket:") for fd in os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """
    Every integration test must leave no task and no socket behind.

    Tasks are compared with the count at the test's start (the baseline differs
    per backend); sockets are counted from /proc/self/fd. A lingering socket is
    given a short, bounded grace period to be closed by the kernel-side teardown.
    """
    gc.collect()
    tasks = len(anyio.get_running_tasks())
    sockets = _open_sockets()
    yield
    with anyio.fail_after(2):
        while len(anyio.get_running_tasks()) > tasks or _open_sockets() > sockets:  # noqa: ASYNC110
            # Process-wide state has no event to wait on: poll, bounded by the deadline.
            await anyio.sleep(0.01)
    gc.collect()
