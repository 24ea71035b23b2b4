"""
Clusters of real etcd members for :mod:`etcdanyio.testing`: :class:`EtcdCluster` starts them on
free loopback ports, waits until they are ready (one agreed leader, a put through each member),
controls faults by member index and runs ``etcdctl`` against them; :class:`EtcdServer` is a
cluster of one. Every wait is bounded; the async twins run the blocking methods in a thread.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from ._testing_process import (
    EtcdMember,
    EtcdProcessError,
    child_env,
    find_etcd_binary,
    make_directory,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence

    from typing_extensions import Self

__all__ = ["EtcdCluster", "EtcdServer", "TLSFiles", "free_ports"]

_T = TypeVar("_T")
_FLAGS = (
    *("--heartbeat-interval", "25", "--election-timeout", "250", "--unsafe-no-fsync"),
    *("--log-level", "error", "--logger", "zap", "--log-outputs", "stderr"),
)
_READY_KEY = base64.b64encode(b"__etcdanyio_testing__/ready").decode()


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """
    PEM files with which members serve clients over TLS (``https://`` client URLs; peers stay
    plaintext): ``--cert-file --key-file``, and ``--trusted-ca-file --client-cert-auth`` with
    ``client_cert_auth`` (etcd 3.5 requires client certificates once it has a CA file; its JSON
    gateway then dials its own gRPC with the server certificate, which must allow client use).
    The harness's probes and etcdctl trust ``ca_file`` and present ``client_cert_file`` (needed
    with ``client_cert_auth``; ``client_key_file`` unless the key is in it). The probes check the
    server's chain but not its name, etcdctl checks both.
    """

    cert_file: str | os.PathLike[str]
    key_file: str | os.PathLike[str]
    ca_file: str | os.PathLike[str]
    client_cert_auth: bool = False
    client_cert_file: str | os.PathLike[str] | None = None
    client_key_file: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.client_cert_file is None and (self.client_cert_auth or self.client_key_file):
            raise ValueError("client_cert_auth and client_key_file need client_cert_file")


def free_ports(count: int) -> list[int]:
    # All stay bound until every port is read, so they are distinct. Another process may still
    # take one before etcd binds it: start() retries once for that (EADDRINUSE).
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sockets[-1].bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _request(
    url: str, body: object | None, timeout: float, context: ssl.SSLContext | None = None
) -> Any:
    """POST ``body`` as JSON (GET if ``None``); the decoded reply, or ``None`` on any failure."""
    import http.client
    import urllib.request  # not at module level: it costs 25 ms and most imports never need it

    data = None if body is None else json.dumps(body).encode()
    # hasleader: a member without a leader fails a put at once, instead of after 5 s.
    headers = {"Content-Type": "application/json", "Grpc-Metadata-hasleader": "true"}
    try:
        request = urllib.request.Request(url, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=max(timeout, 0.05), context=context) as reply:
            return json.loads(reply.read() or b"null")
    except (OSError, http.client.HTTPException, ValueError):  # HTTPError, refused, timeout, junk
        return None


def _probe_context(tls: TLSFiles) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(cafile=tls.ca_file)
    context.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    if tls.client_cert_file is not None:
        context.load_cert_chain(tls.client_cert_file, tls.client_key_file)
    return context


async def _in_thread(function: Callable[[], _T], *, shield: bool = False) -> _T:
    from anyio import CancelScope, to_thread

    with CancelScope(shield=shield):  # never cancelled itself, so it swallows nothing
        result = await to_thread.run_sync(function)
    return result


class EtcdCluster:
    """
    ``size`` etcd members forming one cluster on loopback, with fault controls by member index.

    :param size: the number of members
    :param extra_args: more etcd flags for every member, e.g. ``["--auth-token-ttl", "2"]``
    :param metrics: also serve ``/metrics`` on a port of its own (``member.metrics_url``)
    :param timeout: the default bound, in seconds, of every wait
    :param binary: the etcd executable; default :func:`find_etcd_binary`
    :param tls: serve clients over TLS with these files: ``endpoints`` are then ``https://``
    """

    def __init__(
        self,
        size: int = 3,
        *,
        extra_args: Sequence[str] = (),
        metrics: bool = False,
        timeout: float = 20.0,
        binary: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size!r}")
        self._size, self._extra_args, self._metrics = size, tuple(extra_args), metrics
        #: the TLS files the members serve clients with, or ``None`` (plaintext)
        self.tls, self._context = tls, None if tls is None else _probe_context(tls)
        #: the default bound, in seconds, of every wait (start, restart, leader, wait_ready)
        self.timeout = timeout
        self._binary = binary
        self._directory: str | None = None
        self._token = ""
        #: the members, by index; empty before start and after close
        self.members: list[EtcdMember] = []

    def __repr__(self) -> str:
        if not self.members:
            return f"{type(self).__name__}(size={self._size}, not started)"
        running = sum(member.running for member in self.members)
        return (
            f"{type(self).__name__}(endpoints={self.endpoints!r}, running={running}/{self._size})"
        )

    @property
    def endpoints(self) -> list[str]:
        """The client URLs of all members, running or not."""
        return [member.client_url for member in self.members]

    @property
    def endpoint(self) -> str:
        """The client URL of the first member."""
        return self.endpoints[0]

    def start(self) -> Self:
        """
        Start the members one after another and wait until they are ready: all agree on one
        leader and a put through each one succeeds. If a member exits early (a port was taken in
        between), everything is killed and the start is retried once on new ports.

        :raises EtcdProcessError: if a member exits during start, twice
        :raises TimeoutError: if the members are not ready within ``timeout`` seconds
        """
        if self.members:
            raise RuntimeError("etcd is already started")
        try:
            try:
                self._start_once()
            except EtcdProcessError:
                self.close()
                self._start_once()
        except BaseException:
            self.close()  # no stray process, even when the start failed half-way
            raise
        return self

    def _start_once(self) -> None:
        binary = self._binary or find_etcd_binary()
        self._directory = make_directory()
        self._token = f"etcdanyio-{uuid.uuid4().hex}"
        n = 3 if self._metrics else 2
        ports = free_ports(self._size * n)
        self.members = [
            EtcdMember(f"m{i}", self._directory, ports[i * n : i * n + n], tls=self.tls is not None)
            for i in range(self._size)
        ]
        deadline = time.monotonic() + self.timeout
        # One after another: a member that has bound its peer port but does not serve yet swallows
        # the other members' bootstrap probe for 1 s (etcd 3.5 isMemberBootstrapped).
        for member in self.members:
            self._launch(binary, member, "new")
            self._wait_serving(member, deadline)
        self._wait_ready(deadline)

    def _launch(self, binary: str, member: EtcdMember, state: str) -> None:
        initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        argv = [
            binary, "--name", member.name, "--data-dir", member.data_dir,
            "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", self._token, *_FLAGS,
        ]  # fmt: skip
        if member.metrics_url is not None:
            argv += ["--listen-metrics-urls", member.metrics_url]
        if (tls := self.tls) is not None:
            argv += [f"--cert-file={tls.cert_file}", f"--key-file={tls.key_file}"]
            if tls.client_cert_auth:
                argv += [f"--trusted-ca-file={tls.ca_file}", "--client-cert-auth"]
        member._spawn([*argv, *self._extra_args])

    def close(self) -> None:
        """Kill every member (``SIGCONT``, then ``SIGKILL``) and remove the data directories."""
        for member in self.members:
            member.kill()
        self.members = []
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        try:
            return await _in_thread(self.start)
        except BaseException:
            await self.aclose()  # cancelled: start() went on in the thread and may have succeeded
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`; runs to completion even when cancelled."""
        await _in_thread(self.close, shield=True)

    def _live(self) -> list[EtcdMember]:
        """The members that must answer: not killed, stopped or paused by the test."""
        if not self.members:
            raise RuntimeError("etcd is not started")
        for member in self.members:
            member._check_alive()
        if live := [m for m in self.members if m._wanted and not m.paused]:
            return live
        raise RuntimeError("no etcd member is running (all are killed, stopped or paused)")

    def _poll(self, deadline: float, failure: str, probe: Callable[[], _T | None]) -> _T:
        while (result := probe()) is None:
            if time.monotonic() >= deadline:
                details = "\n".join(member._describe() for member in self.members)
                raise TimeoutError(f"etcd: {failure} in time\n{details}")
            time.sleep(0.01)
        return result

    def _wait_serving(self, member: EtcdMember, deadline: float) -> None:
        # GET /members on the peer port answers once the member serves peer traffic (~50 ms).
        def probe() -> object:
            member._check_alive()
            timeout = min(1.0, deadline - time.monotonic())
            return _request(f"{member.peer_url}/members", None, timeout)

        self._poll(deadline, f"member {member.name} did not serve its peer port", probe)

    def _post(self, member: EtcdMember, path: str, body: object, timeout: float) -> Any:
        return _request(f"{member.client_url}/v3/{path}", body, timeout, self._context)

    def _status(self, member: EtcdMember, timeout: float) -> dict[str, Any] | None:
        status = self._post(member, "maintenance/status", {}, min(timeout, 2.0))
        if not isinstance(status, dict) or "header" not in status:
            return None
        member.id = int(status["header"]["member_id"])
        return status

    def _agreed_leader(self, deadline: float) -> int | None:
        live, leaders = self._live(), set()
        for member in live:
            if (status := self._status(member, deadline - time.monotonic())) is None:
                return None
            leaders.add(int(status.get("leader", 0)))
        if len(leaders) != 1:
            return None
        # A killed or paused leader is still reported until the others elect a new one: wait.
        leader_id = leaders.pop()
        return next((self.members.index(m) for m in live if m.id == leader_id), None)

    def _wait_leader(self, deadline: float) -> int:
        failure = "the running members did not agree on a leader"
        return self._poll(deadline, failure, lambda: self._agreed_leader(deadline))

    def _ready(self, deadline: float) -> bool | None:
        leader = self.members[self._wait_leader(deadline)]
        body = {"key": _READY_KEY, "value": _READY_KEY}
        for member in self._live():
            timeout = min(deadline - time.monotonic(), 2.0)
            if not isinstance(self._post(member, "kv/put", body, timeout), dict):
                return None
        self._post(leader, "kv/deleterange", {"key": _READY_KEY}, 2.0)
        return True

    def _wait_ready(self, deadline: float) -> None:
        failure = "a put through each running member did not succeed"
        self._poll(deadline, failure, lambda: self._ready(deadline))

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def wait_ready(self, timeout: float | None = None) -> None:
        """
        Wait until the running members (not killed, stopped or paused) agree on a leader and a
        put through each one succeeds.

        :raises EtcdProcessError: if a member exited without being killed or stopped
        :raises TimeoutError: if not ready within ``timeout`` (default ``self.timeout``) seconds
        """
        self._wait_ready(self._deadline(timeout))

    async def await_ready(self, timeout: float | None = None) -> None:
        """Async twin of :meth:`wait_ready`."""
        await _in_thread(functools.partial(self.wait_ready, timeout))

    def leader(self, timeout: float | None = None) -> int:
        """
        Return the index of the leader, once all running members report the same running and
        unpaused one: right after the leader is killed or paused, this returns the new leader.

        :raises TimeoutError: if they do not agree within ``timeout`` seconds
        """
        return self._wait_leader(self._deadline(timeout))

    async def aleader(self, timeout: float | None = None) -> int:
        """Async twin of :meth:`leader`."""
        return await _in_thread(functools.partial(self.leader, timeout))

    def member_id(self, index: int) -> int:
        """Return the etcd member ID of member ``index``."""
        member_id = self.members[index].id
        assert member_id is not None, "every member answered a status request during start"
        return member_id

    def kill(self, index: int) -> None:
        """Send ``SIGKILL`` to member ``index`` and wait for it to exit."""
        self.members[index].kill()

    def stop(self, index: int) -> None:
        """Send ``SIGTERM`` to member ``index``, wait up to 5 s for the exit, then kill it."""
        self.members[index].stop()

    def pause(self, index: int) -> None:
        """Freeze member ``index`` with ``SIGSTOP``."""
        self.members[index].pause()

    def resume(self, index: int) -> None:
        """Continue member ``index`` with ``SIGCONT``."""
        self.members[index].resume()

    def restart(self, index: int, *, timeout: float | None = None) -> None:
        """
        Stop member ``index`` if it runs, start it again with the same name, data directory and
        URLs (``--initial-cluster-state existing``), and wait until the cluster is ready.

        :raises TimeoutError: if not ready within ``timeout`` seconds
        """
        member = self.members[index]
        member.stop()
        deadline = self._deadline(timeout)
        self._launch(self._binary or find_etcd_binary(), member, "existing")
        self._wait_serving(member, deadline)
        self._wait_ready(deadline)

    async def arestart(self, index: int, *, timeout: float | None = None) -> None:
        """Async twin of :meth:`restart`."""
        await _in_thread(functools.partial(self.restart, index, timeout=timeout))

    def etcdctl(self, *args: str, timeout: float = 10.0) -> str:
        """
        Run ``etcdctl`` (API v3) against the running members and return its standard output.
        An independent oracle: ``cluster.etcdctl("get", "k", "--print-value-only")``.

        :raises EtcdProcessError: if etcdctl exits with non-zero status (its stderr is included)
        :raises TimeoutError: if it runs longer than ``timeout`` seconds; it is then killed
        """
        if self._binary is not None:
            binary = os.path.join(os.path.dirname(self._binary), "etcdctl")
        else:
            binary = find_etcd_binary("etcdctl")
        endpoints = ",".join(member.client_url for member in self._live())
        argv = [binary, f"--endpoints={endpoints}", "--dial-timeout=2s"]
        if (tls := self.tls) is not None:
            argv.append(f"--cacert={tls.ca_file}")
            if (cert := tls.client_cert_file) is not None:  # etcdctl wants --key too: Go finds it
                argv += [f"--cert={cert}", f"--key={tls.client_key_file or cert}"]
        argv += args
        command = " ".join(["etcdctl", *args])
        try:
            result = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                env=child_env(ETCDCTL_API="3"), check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"{command} ran longer than {timeout} s") from exc
        if result.returncode != 0:
            stderr = result.stderr.decode("utf-8", "replace").strip()
            raise EtcdProcessError(f"{command} exited with {result.returncode}: {stderr}")
        return result.stdout.decode("utf-8", "replace")


class EtcdServer(EtcdCluster):
    """
    One etcd member: an :class:`EtcdCluster` of size 1 whose fault controls need no index
    (``server.kill()``, ``await server.arestart()``). Takes the same parameters but ``size``.
    """

    def __init__(
        self,
        *,
        extra_args: Sequence[str] = (),
        metrics: bool = False,
        timeout: float = 20.0,
        binary: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        super().__init__(
            1, extra_args=extra_args, metrics=metrics, timeout=timeout, binary=binary, tls=tls
        )

    @property
    def member(self) -> EtcdMember:
        """The only member."""
        return self.members[0]

    def kill(self, index: int = 0) -> None:
        """Kill the member (``SIGCONT``, then ``SIGKILL``) and wait for its exit."""
        super().kill(index)

    def stop(self, index: int = 0) -> None:
        """Stop the member with ``SIGTERM`` (``SIGKILL`` after 5 s) and wait for its exit."""
        super().stop(index)

    def pause(self, index: int = 0) -> None:
        """Freeze the member with ``SIGSTOP``: it keeps its sockets but answers nothing."""
        super().pause(index)

    def resume(self, index: int = 0) -> None:
        """Continue a paused member with ``SIGCONT``."""
        super().resume(index)

    def restart(self, index: int = 0, *, timeout: float | None = None) -> None:
        """Start the member again (stopping it first if it runs), with its data and ports."""
        super().restart(index, timeout=timeout)

    async def arestart(self, index: int = 0, *, timeout: float | None = None) -> None:
        """Async twin of :meth:`restart`, run in a worker thread."""
        await super().arestart(index, timeout=timeout)
