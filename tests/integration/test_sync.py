"""
The blocking API (``etcdanyio.sync``) against real etcd, on both loops (``backend=``): KV and
transactions, watches (with timeouts, and resumed across a member restart), leases and their
loss, locks across threads and processes, elections, auth, TLS, callback watches, timeouts,
Ctrl-C, fork, closing, and 32 threads x 200 mixed calls on one client.

Every test is bounded: waits are on events or on ``get(timeout=)``, never on sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from typing import TYPE_CHECKING

import pytest

import etcdanyio
import etcdanyio.sync
from etcdanyio import EventType, LeaseExpiredError, LockLostError, txn
from etcdanyio.testing import EtcdServer, TLSFiles

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

BACKENDS = ["asyncio", "trio"]


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("etcdanyio-sync")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(etcd_server: EtcdServer, backend: str) -> Iterator[etcdanyio.sync.Client]:
    """A sync client; afterwards, no loop thread and no socket of it may be left."""
    threads, sockets = len(_loop_threads()), _sockets()
    with etcdanyio.sync.open_etcd(etcd_server.endpoints, backend=backend, timeout=10) as client:
        yield client
    assert client.closed
    assert len(_loop_threads()) <= threads, _loop_threads()
    deadline = time.monotonic() + 2
    while _sockets() > sockets and time.monotonic() < deadline:
        time.sleep(0.01)  # the kernel-side teardown of a closed socket: poll, bounded
    assert _sockets() <= sockets


@pytest.fixture
def prefix() -> str:
    return f"test_sync/{uuid.uuid4().hex}/"


# ------------------------------------------------------------------------------ KV and txn


def test_kv_round_trip(client: etcdanyio.sync.Client, prefix: str) -> None:
    put = client.put(prefix + "a", "1")
    assert put.header.revision > 0
    kv = client.get(prefix + "a")
    assert kv is not None
    assert kv.value == b"1"
    assert kv.mod_revision == put.header.revision
    assert client.get(prefix + "missing") is None
    client.put(prefix + "b", b"2")
    assert [kv.key for kv in client.get_prefix(prefix).kvs] == [
        (prefix + "a").encode(),
        (prefix + "b").encode(),
    ]
    assert [kv.value for kv in client.iter_prefix(prefix, page_size=1)] == [b"1", b"2"]
    assert client.create(prefix + "a", "x") is False
    assert client.replace(prefix + "a", "1", "3") is True
    assert client.delete_prefix(prefix).deleted == 2
    assert client.get_prefix(prefix).kvs == []


def test_txn(client: etcdanyio.sync.Client, prefix: str) -> None:
    key = prefix + "k"
    client.put(key, "v1")
    result = client.txn(
        compare=[txn.value(key) == "v1"],
        success=[txn.put(key, "v2"), txn.get(key)],
        failure=[txn.get(key)],
    )
    assert result.succeeded
    again = client.txn(compare=[txn.value(key) == "v1"], success=[], failure=[txn.get(key)])
    assert not again.succeeded
    stored = client.get(key)
    assert stored is not None
    assert stored.value == b"v2"


def test_namespace(etcd_server: EtcdServer, backend: str, prefix: str) -> None:
    with etcdanyio.sync.open_etcd(
        etcd_server.endpoints, backend=backend, namespace=prefix
    ) as client:
        client.put("k", "v")
        assert client.namespace == prefix.encode()
        kv = client.get("k")
        assert kv is not None
        assert kv.key == b"k"
    with etcdanyio.sync.open_etcd(etcd_server.endpoints, backend=backend) as plain:
        assert plain.get(prefix + "k") is not None


def test_server_errors_are_typed(client: etcdanyio.sync.Client, prefix: str) -> None:
    revision = client.put(prefix + "k", "v").header.revision
    with pytest.raises(etcdanyio.FutureRevisionError):
        client.get(prefix + "k", revision=revision + 1000)
    with pytest.raises(TypeError):
        client.put(prefix + "k", 5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- watch


def test_watch_get_and_iteration(client: etcdanyio.sync.Client, prefix: str) -> None:
    with client.watch(prefix, prefix=True, prev_kv=True) as events:
        assert events.get(timeout=0.05) is None
        client.put(prefix + "a", "1")
        client.put(prefix + "a", "2")
        client.delete(prefix + "a")
        got = []
        for event in events:
            got.append(event)
            if len(got) == 3:
                break
        assert [e.type for e in got] == [EventType.PUT, EventType.PUT, EventType.DELETE]
        assert got[1].prev_kv is not None
        assert got[1].prev_kv.value == b"1"
        assert events.revision >= got[2].revision
        assert events.get(timeout=0.05) is None


def test_watch_once_and_timeouts(client: etcdanyio.sync.Client, prefix: str) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.watch_once(prefix + "never", timeout=0.2)
    assert time.monotonic() - started < 5
    # The client survives the cancelled call.
    revision = client.put(prefix + "k", "v").header.revision
    event = client.watch_once(prefix + "k", start_revision=revision, timeout=5)
    assert event.kv.value == b"v"


def test_client_timeout_bounds_every_call(
    etcd_server: EtcdServer, backend: str, prefix: str
) -> None:
    with etcdanyio.sync.open_etcd(etcd_server.endpoints, backend=backend, timeout=0.2) as client:
        with pytest.raises(TimeoutError):
            client.watch_once(prefix + "never")
        with pytest.raises(TimeoutError):
            client.watch_once(prefix + "never", timeout=0.1)
        assert client.get(prefix + "k") is None


def test_watch_resumes_across_a_member_restart(backend: str, prefix: str) -> None:
    with (
        EtcdServer() as server,
        etcdanyio.sync.open_etcd(server.endpoints, backend=backend, timeout=10) as client,
        client.watch(prefix, prefix=True) as events,
    ):
        client.put(prefix + "before", "1")
        first = events.get(timeout=10)
        assert first is not None
        assert first.kv.key.endswith(b"before")
        server.restart()
        # Written while the watch reconnects, and after: each delivered once, in order.
        for i in range(5):
            client.put(prefix + f"after{i}", str(i))
        got = [events.get(timeout=15) for _ in range(5)]
        assert [e.kv.value for e in got if e is not None] == [b"0", b"1", b"2", b"3", b"4"]
        assert events.get(timeout=0.2) is None


def test_callback_watch(
    client: etcdanyio.sync.Client, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []
    threads: set[str] = set()
    third = threading.Event()

    def callback(event: etcdanyio.Event) -> None:
        threads.add(threading.current_thread().name)
        seen.append(event.kv.value)
        if event.kv.value == b"boom":
            raise RuntimeError("a failing callback")
        if len(seen) == 3:
            third.set()

    with caplog.at_level(logging.ERROR, logger="etcdanyio.sync"):
        watch_id = client.add_watch_prefix_callback(prefix, callback)
        client.put(prefix + "a", "1")
        client.put(prefix + "a", "boom")  # logged; the watch goes on
        client.put(prefix + "a", "3")
        assert third.wait(10)
        client.cancel_watch(watch_id)
        client.cancel_watch(watch_id)  # unknown by now: ignored
    assert seen == [b"1", b"boom", b"3"]
    assert threads == {"etcdanyio-sync-callbacks"}
    assert any("a failing callback" in r.getMessage() or r.exc_info for r in caplog.records)
    # Cancelled: nothing more arrives (a second watch sees the next put, the first does not).
    marker = threading.Event()
    other = client.add_watch_callback(prefix + "a", lambda e: marker.set())
    client.put(prefix + "a", "4")
    assert marker.wait(10)
    client.cancel_watch(other)
    assert seen == [b"1", b"boom", b"3"]


# ---------------------------------------------------------------------------------- leases


def test_lease_scope(client: etcdanyio.sync.Client, prefix: str) -> None:
    with client.lease(ttl=10) as lease:
        assert lease.id
        client.put(prefix + "k", "v", lease=lease)
        client.put(prefix + "t", "v")
        client.txn(success=[txn.put(prefix + "t", "w", lease=lease)])
        assert sorted(lease.keys()) == sorted([(prefix + "k").encode(), (prefix + "t").encode()])
        assert 0 < lease.remaining_ttl() <= 10
        assert lease.lost is None
        assert not lease.lost_event.is_set()
    # Revoked on exit: its keys are gone.
    assert client.get(prefix + "k") is None
    assert client.lease_time_to_live(lease.id).ttl == -1


def test_lease_loss_is_reported(client: etcdanyio.sync.Client, prefix: str) -> None:
    with pytest.raises(LeaseExpiredError):
        _lose_lease(client, prefix)


def _lose_lease(client: etcdanyio.sync.Client, prefix: str) -> None:
    with client.lease(ttl=10) as lease:
        client.lease_revoke(lease.id)  # lost: revoked behind the scope's back
        assert lease.lost_event.wait(15)
        assert lease.lost is not None
        with pytest.raises(LeaseExpiredError):
            lease.check()
        with pytest.raises(etcdanyio.LeaseNotFoundError):
            client.put(prefix + "k", "v", lease=lease)


# ----------------------------------------------------------------------------------- locks


def test_lock_excludes_threads(client: etcdanyio.sync.Client, prefix: str) -> None:
    counter = prefix + "counter"
    client.put(counter, "0")
    inside = 0
    overlap = []
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside
        for _ in range(3):
            with client.lock(prefix + "lock", ttl=10, timeout=30) as lock:
                with guard:
                    inside += 1
                    overlap.append(inside)
                kv = client.get(counter)
                assert kv is not None
                result = client.txn(
                    compare=[lock.is_owner()],
                    success=[txn.put(counter, str(int(kv.value) + 1))],
                )
                assert result.succeeded
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    kv = client.get(counter)
    assert kv is not None
    assert kv.value == b"12"
    assert max(overlap) == 1


def test_lock_timeout_and_reentry(client: etcdanyio.sync.Client, prefix: str) -> None:
    name = prefix + "lock"
    with client.lock(name, ttl=10) as outer:
        with client.lock(name, reentrant=True) as inner:
            assert inner.key == outer.key
        blocked: list[BaseException] = []

        def contender() -> None:
            try:
                with client.lock(name, ttl=10, timeout=0.3):
                    pass
            except BaseException as exc:
                blocked.append(exc)

        thread = threading.Thread(target=contender)
        thread.start()
        thread.join(30)
        assert len(blocked) == 1
        assert isinstance(blocked[0], TimeoutError)
    # The contender left no key behind, and ours was released.
    assert client.get_prefix(name + "/").kvs == []


def test_lock_across_processes(
    etcd_server: EtcdServer, client: etcdanyio.sync.Client, prefix: str
) -> None:
    name = prefix + "lock"
    child = textwrap.dedent(
        f"""
        import sys, etcdanyio.sync
        with etcdanyio.sync.open_etcd({etcd_server.endpoints!r}, backend={client.backend!r}) as c:
            with c.lock({name!r}, ttl=10, timeout=30):
                print("held", flush=True)
                sys.stdin.readline()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        _lock_against(process, client, name)


def _lock_against(process: subprocess.Popen[str], client: etcdanyio.sync.Client, name: str) -> None:
    try:
        assert process.stdout is not None
        assert process.stdin is not None
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError), client.lock(name, ttl=10, timeout=0.5):
            pass
        process.stdin.write("\n")
        process.stdin.flush()
        with client.lock(name, ttl=10, timeout=20) as lock:
            assert lock.is_acquired()
        assert process.wait(20) == 0
    finally:
        process.kill()
        process.wait()


def test_lock_loss_is_reported(client: etcdanyio.sync.Client, prefix: str) -> None:
    with pytest.raises(LockLostError):
        _lose_lock(client, prefix)
    assert client.get(prefix + "x") is None


def _lose_lock(client: etcdanyio.sync.Client, prefix: str) -> None:
    with client.lock(prefix + "lock", ttl=10) as lock:
        assert not lock.lost_event.is_set()
        client.lease_revoke(lock._async.lease.id)  # type: ignore[union-attr]
        assert lock.lost_event.wait(15)
        assert lock.lost is not None
        guarded = client.txn(compare=[lock.is_owner()], success=[txn.put(prefix + "x", "1")])
        assert not guarded.succeeded
        assert not lock.is_acquired()


# ------------------------------------------------------------------------------- elections


def test_election(client: etcdanyio.sync.Client, prefix: str) -> None:
    election = client.election(prefix + "e")
    assert election.leader() is None
    won = threading.Event()
    second_led: list[bytes] = []

    def second() -> None:
        with client.election(prefix + "e").campaign(b"two", ttl=10) as leadership:
            second_led.append(leadership.value)

    with election.observe() as leaders:
        observed = iter(leaders)
        assert next(observed) is None
        with election.campaign(b"one", ttl=10) as leadership:
            won.set()
            current = next(observed)
            assert current is not None
            assert current.value == b"one"
            leadership.proclaim(b"one v2")
            current = next(observed)
            assert current is not None
            assert current.value == b"one v2"
            assert client.txn(compare=[leadership.is_leader()]).succeeded
            thread = threading.Thread(target=second)
            thread.start()
        # Resigned on exit (perhaps nobody leads for a moment): the second candidate leads next.
        current = next(observed)
        if current is None:
            current = next(observed)
        assert current is not None
        assert current.value == b"two"
        thread.join(30)
    assert won.is_set()
    assert second_led == [b"two"]


def test_leadership_loss_is_reported(client: etcdanyio.sync.Client, prefix: str) -> None:
    with pytest.raises(etcdanyio.LeadershipLostError):
        _lose_leadership(client, prefix)
    assert client.get(prefix + "x") is None


def _lose_leadership(client: etcdanyio.sync.Client, prefix: str) -> None:
    with client.election(prefix + "e").campaign(b"me", ttl=10) as leadership:
        assert not leadership.lost_event.is_set()
        client.lease_revoke(leadership._async.lease.id)
        assert leadership.lost_event.wait(15)
        assert leadership.lost is not None
        guarded = client.txn(compare=[leadership.is_leader()], success=[txn.put(prefix + "x", "1")])
        assert not guarded.succeeded
        with pytest.raises(etcdanyio.NotLeaderError):
            leadership.proclaim(b"still me?")


# -------------------------------------------------------------------------- auth and TLS


def test_auth(backend: str, prefix: str) -> None:
    with EtcdServer() as server:
        with etcdanyio.sync.open_etcd(server.endpoints, backend=backend) as admin:
            admin.user_add("root", "rootpw")
            admin.user_grant_role("root", "root")
            admin.auth_enable()
        with etcdanyio.sync.open_etcd(
            server.endpoints, backend=backend, username="root", password="rootpw"
        ) as root:
            root.put(prefix + "k", "v")
            kv = root.get(prefix + "k")
            assert kv is not None
            assert root.auth_status().enabled
        with pytest.raises(etcdanyio.AuthenticationError):
            etcdanyio.sync.Client(server.endpoints, backend=backend, username="root", password="x")
        with (
            etcdanyio.sync.open_etcd(server.endpoints, backend=backend) as anonymous,
            pytest.raises(etcdanyio.EtcdError),
        ):
            anonymous.get(prefix + "k")


def test_tls(tmp_path: Path, backend: str, prefix: str) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    with EtcdServer(tls=TLSFiles(str(cert), str(key), str(ca_file))) as server:
        context = etcdanyio.tls_context(ca_file=str(ca_file))
        with etcdanyio.sync.open_etcd(
            server.endpoints, backend=backend, ssl_context=context
        ) as client:
            assert client.endpoints[0].startswith("https://")
            client.put(prefix + "k", "v")
            kv = client.get(prefix + "k")
            assert kv is not None
            assert kv.value == b"v"


# --------------------------------------------------------------------------------- threads


def test_32_threads_x_200_mixed_calls(client: etcdanyio.sync.Client, prefix: str) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            key = f"{prefix}{index}"
            for i in range(200):
                match i % 4:
                    case 0:
                        client.put(key, str(i))
                    case 1:
                        kv = client.get(key)
                        assert kv is not None
                        assert kv.value == str(i - 1).encode()
                    case 2:
                        result = client.txn(
                            compare=[txn.value(key) == str(i - 2)],
                            success=[txn.put(key, str(i))],
                        )
                        assert result.succeeded
                    case _:
                        assert client.get_prefix(key).kvs[0].value == str(i - 1).encode()
                if i % 50 == 49:  # scopes too: a lease and a watch per thread, now and then
                    with client.lease(10) as lease, client.watch(key + "/w") as events:
                        client.put(key + "/w", str(i), lease=lease)
                        event = events.get(timeout=20)
                        assert event is not None
                        assert event.kv.value == str(i).encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert client.get_prefix(prefix, count_only=True).count == 32  # the leased keys are gone


def test_random_timeouts_leave_nothing_behind(client: etcdanyio.sync.Client, prefix: str) -> None:
    """Calls and scope entries cut at random points by their timeout leave no key or lease."""
    rng = random.Random(15)
    name = prefix + "lock"
    leases_before = set(client.leases())
    with client.lock(name, ttl=10) as holder:
        for i in range(40):
            with (
                contextlib.suppress(TimeoutError),
                client.lock(name, ttl=10, timeout=rng.uniform(0.001, 0.05)),
            ):
                raise AssertionError("the lock is held: the wait must time out")
            # etcd may answer a write whose grpc-timeout expires inside raft with "request
            # timed out" (UNAVAILABLE) before the local deadline fires: the async client's rule.
            with contextlib.suppress(TimeoutError, etcdanyio.UnavailableError):
                client.put(prefix + f"k{i}", "v", timeout=rng.uniform(0.0001, 0.004))
            with contextlib.suppress(TimeoutError):
                client.watch_once(prefix + "never", timeout=rng.uniform(0.0001, 0.01))
            with (
                contextlib.suppress(TimeoutError, etcdanyio.UnavailableError),
                client.lease(10) as lease,
            ):
                client.put(prefix + "leased", "v", lease=lease, timeout=rng.uniform(0.0001, 0.004))
        assert [kv.key for kv in client.get_prefix(name + "/").kvs] == [holder.key]
    assert client.get_prefix(name + "/").kvs == []
    assert client.get(prefix + "leased") is None
    assert set(client.leases()) <= leases_before
    # Still usable, on the same connection.
    client.put(prefix + "after", "v")


# ---------------------------------------------------------------------- lifecycle, signals


def test_ctrl_c_interrupts_a_blocking_call(client: etcdanyio.sync.Client, prefix: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.watch_once(prefix + "never", timeout=30)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    # Usable afterwards.
    client.put(prefix + "k", "v")
    assert client.get(prefix + "k") is not None


def test_ctrl_c_interrupts_a_lock_wait_and_leaves_no_key(
    client: etcdanyio.sync.Client, prefix: str
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    main = threading.main_thread().ident
    assert main is not None
    name = prefix + "lock"
    with client.lock(name, ttl=10) as held:
        timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                _wait_for_lock(client, name)
        finally:
            timer.cancel()
        # The interrupted waiter's key is gone; the holder's stays.
        assert [kv.key for kv in client.get_prefix(name + "/").kvs] == [held.key]
    assert client.get_prefix(name + "/").kvs == []


def _wait_for_lock(client: etcdanyio.sync.Client, name: str) -> None:
    with client.lock(name, ttl=10):
        raise AssertionError("the lock is held: the wait must be interrupted")


def test_close_is_idempotent_and_final(etcd_server: EtcdServer, backend: str) -> None:
    client = etcdanyio.sync.Client(etcd_server.endpoints, backend=backend)
    client.put("test_sync/close", "v")
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(etcdanyio.sync.ClientClosedError):
        client.get("test_sync/close")


def test_close_cancels_calls_in_flight(etcd_server: EtcdServer, backend: str) -> None:
    client = etcdanyio.sync.Client(etcd_server.endpoints, backend=backend)
    errors: list[BaseException] = []
    entered = threading.Event()

    def blocked() -> None:
        try:
            with client.watch("test_sync/never") as events:
                entered.set()
                events.get()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    assert entered.wait(10)
    client.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], etcdanyio.sync.ClientClosedError)


def test_unclosed_client_does_not_keep_the_interpreter_alive(
    etcd_server: EtcdServer, backend: str
) -> None:
    code = (
        "import etcdanyio.sync\n"
        f"c = etcdanyio.sync.Client({etcd_server.endpoints!r}, backend={backend!r})\n"
        "c.put('test_sync/exit', 'v')\n"
        "print('done', flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_clear_error(client: etcdanyio.sync.Client) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what using the parent's client does, then leave at once
        try:
            client.get("test_sync/fork")
            message = b"no error"
        except etcdanyio.sync.ForkedClientError as exc:
            message = b"ForkedClientError: " + str(exc).encode()
        except BaseException as exc:
            message = repr(exc).encode()
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    assert message.startswith(b"ForkedClientError: "), message
    assert b"os.fork()" in message
    # The parent's connection is untouched.
    client.put("test_sync/fork", "v")


def test_sync_mirror(etcd_server: EtcdServer, backend: str) -> None:
    """client.mirror() in the blocking API: reads hop onto the loop, consistent at a revision."""
    with etcdanyio.sync.open_etcd(etcd_server.endpoint, backend=backend, timeout=10) as client:
        client.delete_prefix("sync-mirror/")
        client.put("sync-mirror/a", "1")
        with client.mirror("sync-mirror/", prefix=True) as mirror:
            assert mirror[b"sync-mirror/a"].value == b"1"
            assert "sync-mirror/a" in mirror
            assert len(mirror) == 1
            changes = mirror.changes()
            result = client.put("sync-mirror/b", "2")
            mirror.wait_for_revision(result.header.revision, timeout=5)
            assert sorted(mirror) == [b"sync-mirror/a", b"sync-mirror/b"]
            update = next(changes)
            assert [e.kv.key for e in update.events] == [b"sync-mirror/b"]
            revision, content = mirror.snapshot()
            assert revision >= result.header.revision
            assert set(content) == {b"sync-mirror/a", b"sync-mirror/b"}
            assert mirror.sync(timeout=5) >= revision
            assert mirror.get("sync-mirror/none") is None
        with pytest.raises(RuntimeError, match="not open"):
            _ = mirror.revision
        client.delete_prefix("sync-mirror/")
