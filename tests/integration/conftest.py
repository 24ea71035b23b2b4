from __future__ import annotations

import gc
import inspect
import os
from pathlib import Path
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Async tests only: an async fixture on a sync test is an error in pytest 9.
    here = Path(__file__).parent
    for item in items:
        function = getattr(item, "function", None)
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(function)
            and here in Path(str(item.fspath)).parents
        ):
            item.fixturenames.insert(0, "no_leaks")  # first set up, last torn down


@pytest.fixture
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
    with anyio.move_on_after(2):
        while len(anyio.get_running_tasks()) > tasks or _open_sockets() > sockets:  # noqa: ASYNC110
            # Process-wide state has no event to wait on: poll, bounded by the deadline.
            await anyio.sleep(0.01)
    gc.collect()
    assert len(anyio.get_running_tasks()) <= tasks, f"tasks left: {anyio.get_running_tasks()}"
    assert _open_sockets() <= sockets, f"{_open_sockets() - sockets} socket(s) left open"
