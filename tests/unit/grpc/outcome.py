"""Calls run in background tasks, for the transport tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup


class Outcome:
    """The result of a call run in a background task: a value or an exception."""

    def __init__(self) -> None:
        self.value: bytes | None = None
        self.error: BaseException | None = None
        self.done = anyio.Event()

    async def run(self, call: Callable[[], Awaitable[bytes]]) -> None:
        try:
            self.value = await call()
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    async def wait(self) -> Outcome:
        await self.done.wait()
        return self


def start(tg: TaskGroup, call: Callable[[], Awaitable[bytes]]) -> Outcome:
    outcome = Outcome()
    tg.start_soon(outcome.run, call)
    return outcome
