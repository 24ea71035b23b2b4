"""
Elections against a real etcd: one leader at a time, proclaim, resign, ``leader()``,
``observe()`` (``None`` when nobody leads, every change in order), ``NotLeaderError``, scenario
S38 of reliability.md §2.6 (a stalled leader), and interop with ``etcdctl elect`` both ways.

Candidates queue under ``name + "/"``: a watch on that prefix says when one has enqueued, so no
test sleeps to wait for a state. Ground truth is read with the JSON-gateway oracle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import etcdanyio
from etcdanyio import EventType, LeadershipLostError, NotLeaderError, txn
from etcdanyio.testing import find_etcd_binary

from ._kit.faultproxy import open_fault_proxy
from ._kit.oracle import Oracle

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from etcdanyio.election import Observation
    from etcdanyio.testing import EtcdServer

from ._kit.helpers import ask

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: Slack on the client's local deadline: scheduling, and the 2 ms poll of ``wait_answer``.
SLACK = 0.7


@pytest.fixture
def name() -> str:
    return f"test_election/{uuid.uuid4().hex}"


@pytest.fixture
def oracle(etcd_server: EtcdServer) -> Oracle:
    return Oracle(etcd_server.endpoint)


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


async def next_put(events: etcdanyio.Watch) -> etcdanyio.KeyValue:
    """The next candidate to enqueue (or proclamation): the next PUT under the prefix."""
    async for event in events:
        if event.type is EventType.PUT:
            return event.kv
    raise AssertionError("the watch ended")  # pragma: no cover


async def wait_answer(lease: etcdanyio.Lease, within: float = 3.0) -> float:
    """Wait until the client sees the next keepalive answer for ``lease``; return when."""
    before = lease.deadline
    with anyio.fail_after(within):
        while lease.deadline == before:  # noqa: ASYNC110 -- no event to wait on: poll, bounded
            await anyio.sleep(0.002)
    return anyio.current_time()


async def observed(leaders: Observation) -> bytes | None:
    """The next observation: the leader's value, or ``None`` when nobody leads."""
    kv = await leaders.__anext__()
    return None if kv is None else kv.value


async def leader_value(election: etcdanyio.Election) -> bytes | None:
    kv = await election.leader()
    return None if kv is None else kv.value


# -- etcdctl ------------------------------------------------------------------------------------


class Etcdctl:
    """A running ``etcdctl`` whose standard output is read line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def readline(self) -> bytes:
        return await self._stdout.receive_until(b"\n", 65536)

    def interrupt(self) -> None:
        """SIGTERM: etcdctl resigns (or stops observing) and exits."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)


@asynccontextmanager
async def etcdctl(endpoint: str, *args: str) -> AsyncIterator[Etcdctl]:
    """Run ``etcdctl --endpoints=endpoint args...`` for the block; stop it on exit."""
    argv = [find_etcd_binary("etcdctl"), f"--endpoints={endpoint}", "--dial-timeout=2s", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env["ETCDCTL_API"] = "3"
    process = await anyio.open_process(argv, env=env, stderr=subprocess.DEVNULL)
    async with process:
        try:
            yield Etcdctl(process)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if process.returncode is None:
                    process.terminate()
                await process.wait()
            if process.returncode is None:  # pragma: no cover -- stuck: do not leak it
                process.kill()


# -- campaigns ----------------------------------------------------------------------------------


async def test_one_leader_at_a_time(client: etcdanyio.Client, name: str, oracle: Oracle) -> None:
    election = client.election(name)
    leading = 0
    led: list[bytes] = []
    fenced = name + "-fenced"

    async def candidate(i: int) -> None:
        nonlocal leading
        value = b"candidate-%d" % i
        async with election.campaign(value, ttl=10) as leadership:
            leading += 1
            try:
                assert leading == 1, "two leaders at once"
                assert leadership.value == value
                assert await leader_value(election) == value
                await anyio.lowlevel.checkpoint()  # let the others run while we lead
                result = await client.txn(
                    compare=[leadership.is_leader()], success=[txn.put(fenced, value)]
                )
                assert result.succeeded
                led.append(value)
            finally:
                leading -= 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(candidate, i)
    assert sorted(led) == [b"candidate-%d" % i for i in range(4)]
    assert await election.leader() is None
    assert await ask(oracle.range_prefix, (name + "/").encode()) == []


async def test_observe_proclaim_resign_in_order(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    """Observe sees None, each proclamation, the hand-over on resign, and None again."""
    election = client.election(name)
    b_leads = anyio.Event()
    b_done = anyio.Event()
    b_proclaimed = anyio.Event()

    async def candidate_b() -> None:
        async with election.campaign(b"b1", ttl=10) as leadership:
            b_leads.set()
            await b_proclaimed.wait()
            await leadership.proclaim(b"b2")
            await b_done.wait()

    with anyio.fail_after(10):
        async with (
            client.watch(name + "/", prefix=True) as events,
            election.observe() as leaders,
            anyio.create_task_group() as tg,
        ):
            assert await observed(leaders) is None  # nobody leads yet
            assert await election.leader() is None
            async with election.campaign(b"a1", ttl=10) as a:
                assert await observed(leaders) == b"a1"
                assert a.key == (await next_put(events)).key
                assert await leader_value(election) == b"a1"
                await a.proclaim("a2")
                assert a.value == b"a2"
                assert await observed(leaders) == b"a2"
                assert (await next_put(events)).value == b"a2"
                assert await leader_value(election) == b"a2"
                found = await ask(oracle.get, a.key)
                assert found is not None
                assert found[0] == b"a2"

                tg.start_soon(candidate_b)
                queued = await next_put(events)  # b waits behind a
                assert queued.value == b"b1"
                assert queued.create_revision > a.revision
                assert not b_leads.is_set()
                assert await leader_value(election) == b"a2"

                await a.resign()  # hands over to b
                await b_leads.wait()
                assert await observed(leaders) == b"b1"
                assert await leader_value(election) == b"b1"
                with pytest.raises(NotLeaderError) as info:
                    await a.proclaim(b"a3")
                assert info.value.applied is False
                await a.resign()  # a second resign is a no-op
            b_proclaimed.set()
            assert await observed(leaders) == b"b2"
            b_done.set()
            assert await observed(leaders) is None  # b left: nobody leads
            assert await election.leader() is None
    assert await ask(oracle.range_prefix, (name + "/").encode()) == []


async def test_leaving_observe_right_after_a_change_raises_nothing(
    client: etcdanyio.Client, name: str
) -> None:
    with anyio.fail_after(15):
        for i in range(20):
            election = client.election(f"{name}/{i}")
            try:
                async with election.observe() as leaders:
                    assert await observed(leaders) is None
                    async with election.campaign(b"x", ttl=10) as leadership:
                        assert await observed(leaders) == b"x"
                        await leadership.proclaim(b"y")
                    # Leave while the observer reads who leads after the resignation.
            except BaseExceptionGroup as group:
                if group.subgroup(anyio.BrokenResourceError) is None:
                    raise
                raise AssertionError(f"iteration {i}: {group!r}") from group


async def test_lost_leadership_cancels_the_body_and_proclaim_fails(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    """The leader's lease revoked elsewhere: LeadershipLostError as itself, proclaim refused."""
    ttl = 2
    election = client.election(name)
    completed = False
    error: LeadershipLostError | None = None
    with anyio.fail_after(10):
        try:
            async with election.campaign(b"doomed", ttl=ttl) as leadership:
                await ask(oracle.lease_revoke, leadership.lease.id)
                revoked = anyio.current_time()
                await anyio.sleep(ttl)  # longer than it may take to notice
                completed = True
        except LeadershipLostError as exc:  # as itself: an ExceptionGroup fails the test
            error = exc
        assert type(error) is LeadershipLostError, repr(error)
        assert error.lease_id == leadership.lease.id
        assert anyio.current_time() - revoked <= ttl / 3 + 0.5
        assert not completed
        with pytest.raises(NotLeaderError):
            await leadership.proclaim(b"still me?")
        assert await election.leader() is None


async def test_bad_election_arguments(client: etcdanyio.Client) -> None:
    with anyio.fail_after(5):
        with pytest.raises(ValueError, match="empty"):
            client.election("")
        with pytest.raises(TypeError):
            client.election(None)  # type: ignore[arg-type]
        election = client.election("test_election/bad")
        with pytest.raises(TypeError):
            async with election.campaign(5, ttl=10):  # type: ignore[arg-type]
                pass  # pragma: no cover
        assert await election.leader() is None  # nothing was enqueued


# -- S38 ----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_s38_stalled_leader_is_replaced(
    etcd_server: EtcdServer, name: str, oracle: Oracle
) -> None:
    """S38: the leader's proxy stalled for TTL + 1 s; a follower takes over."""
    ttl = 2
    times: dict[str, float] = {}
    outcome: list[BaseException] = []
    seen: list[bytes | None] = []
    old: list[etcdanyio.Leadership] = []
    leader_in, leader_done, follower_in = anyio.Event(), anyio.Event(), anyio.Event()
    finished, follower_done = anyio.Event(), anyio.Event()

    async def old_leader(client: etcdanyio.Client) -> None:
        try:
            async with client.election(name).campaign(b"old", ttl=ttl) as leadership:
                old.append(leadership)
                leader_in.set()
                try:
                    await anyio.sleep_forever()
                finally:
                    times["cancelled"] = anyio.current_time()
        except LeadershipLostError as exc:
            outcome.append(exc)
        times["raised"] = anyio.current_time()
        leader_done.set()

    async def follower(client: etcdanyio.Client) -> None:
        async with client.election(name).campaign(b"new", ttl=10):
            times["follower_in"] = anyio.current_time()
            follower_in.set()
            await finished.wait()
        follower_done.set()

    async def observer(leaders: Observation) -> None:
        async for kv in leaders:
            seen.append(None if kv is None else kv.value)
            if seen[-1] == b"new":
                times["observed"] = anyio.current_time()
                return

    with anyio.fail_after(20):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as old_client,
            etcdanyio.open_etcd(etcd_server.endpoint) as client,
            client.watch(name + "/", prefix=True) as events,
            client.election(name).observe() as leaders,
            anyio.create_task_group() as tg,
        ):
            assert await observed(leaders) is None  # nobody leads yet
            tg.start_soon(old_leader, old_client)
            await leader_in.wait()
            await next_put(events)
            tg.start_soon(follower, client)
            await next_put(events)  # the follower is queued behind the old leader
            tg.start_soon(observer, leaders)
            answered = await wait_answer(old[0].lease)
            proxy.set_mode("stall")
            await anyio.sleep(ttl + 1)  # the fault's duration
            proxy.heal()
            await follower_in.wait()
            await leader_done.wait()
            # The old leader's fenced proclamation, after healing, is refused.
            with pytest.raises(NotLeaderError):
                await old[0].proclaim(b"stale")
            finished.set()
            await follower_done.wait()
            assert await observed(leaders) is None  # the follower resigned too
    assert [type(exc) for exc in outcome] == [LeadershipLostError], outcome
    assert ttl - 0.05 <= times["cancelled"] - answered <= ttl + SLACK
    assert times["cancelled"] < times["follower_in"]  # the old leader knew first
    assert times["cancelled"] < times["observed"]
    assert seen == [b"old", b"new"]
    assert await ask(oracle.range_prefix, (name + "/").encode()) == []  # the follower left too
    assert times["raised"] - answered <= ttl + SLACK, (
        f"LeadershipLostError raised {times['raised'] - answered:.2f} s after the last answer"
    )


# -- interop with etcdctl -----------------------------------------------------------------------


async def test_etcdctl_observes_our_leader(
    etcd_server: EtcdServer, client: etcdanyio.Client, name: str
) -> None:
    with anyio.fail_after(10):
        async with (
            client.election(name).campaign(b"ours", ttl=10) as leadership,
            etcdctl(etcd_server.endpoint, "elect", "-l", name) as ctl,
        ):
            assert await ctl.readline() == leadership.key
            assert await ctl.readline() == b"ours"
            await leadership.proclaim(b"ours-2")
            assert await ctl.readline() == leadership.key
            assert await ctl.readline() == b"ours-2"


async def test_we_see_an_etcdctl_leader(
    etcd_server: EtcdServer, client: etcdanyio.Client, name: str
) -> None:
    election = client.election(name)
    ours_in, ours_done = anyio.Event(), anyio.Event()

    async def campaign() -> None:
        async with election.campaign(b"ours", ttl=10):
            ours_in.set()
        ours_done.set()

    with anyio.fail_after(10):
        async with (
            client.watch(name + "/", prefix=True) as events,
            election.observe() as leaders,
            anyio.create_task_group() as tg,
        ):
            assert await observed(leaders) is None
            async with etcdctl(etcd_server.endpoint, "elect", name, "theirs") as ctl:
                theirs = await ctl.readline()  # printed once etcdctl leads
                assert await ctl.readline() == b"theirs"
                assert (await next_put(events)).key == theirs
                assert await observed(leaders) == b"theirs"
                kv = await election.leader()
                assert kv is not None
                assert (kv.key, kv.value) == (theirs, b"theirs")
                tg.start_soon(campaign)
                await next_put(events)  # we are queued behind etcdctl
                assert not ours_in.is_set()
                ctl.interrupt()  # etcdctl resigns and exits
                await ours_in.wait()
            assert await observed(leaders) == b"ours"
            await ours_done.wait()
            assert await observed(leaders) is None  # and we resigned
