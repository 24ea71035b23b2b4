"""
``version()``, ``http_health()`` and ``metrics()`` against real etcd 3.5 and 3.4 members:
plaintext (HTTP/1.1), TLS and mutual TLS (HTTP/2 through the transport's core, ALPN ``h2``),
a plaintext ``--listen-metrics-urls`` port asked from a TLS client, and cancellation.

It also pins down the two facts of etcd's ``embed/serve.go`` that decide which HTTP is
spoken: on a plaintext port HTTP/2 goes to the gRPC server (which resets a plain ``GET``),
and over TLS the client's context negotiates ``h2``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
import trustme

import etcdanyio
from etcdanyio import Client, _http
from etcdanyio._grpc import Endpoint
from etcdanyio.testing import EtcdServer, TLSFiles

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20


def _etcd34() -> str | None:
    """The etcd 3.4 binary: ``$ETCD34_BIN``, else ``.etcd34/usr/bin/etcd`` in the repo."""
    for candidate in (os.environ.get("ETCD34_BIN"), str(ROOT / ".etcd34" / "usr" / "bin" / "etcd")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module", params=["3.5", "3.4"], ids=["etcd3.5", "etcd3.4"])
def binary(request: pytest.FixtureRequest) -> str | None:
    if request.param == "3.5":
        return None
    found = _etcd34()
    if found is None:
        pytest.skip("etcd 3.4 not found: set $ETCD34_BIN or run scripts/fetch-etcd34.sh")
    return found


class Certs:
    """A trustme CA, a server certificate for 127.0.0.1 and a client certificate, as files."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        self.ca_file = str(directory / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        self.server = self._issue(ca, directory, "server", "127.0.0.1", "localhost")
        self.client = self._issue(ca, directory, "client", "etcdanyio-test-client")

    @staticmethod
    def _issue(ca: trustme.CA, directory: Path, name: str, *names: str) -> tuple[str, str]:
        leaf = ca.issue_cert(*names)
        cert, key = str(directory / f"{name}.pem"), str(directory / f"{name}.key")
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
        return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("http-tls"))


@pytest.fixture(scope="module")
def plain(binary: str | None) -> Iterator[EtcdServer]:
    with EtcdServer(binary=binary) as server:
        yield server


@pytest.fixture(scope="module")
def mtls(binary: str | None, certs: Certs) -> Iterator[EtcdServer]:
    """TLS with client certificates required, and a plaintext metrics port."""
    files = TLSFiles(
        *certs.server,
        certs.ca_file,
        client_cert_auth=True,
        client_cert_file=certs.client[0],
        client_key_file=certs.client[1],
    )
    with EtcdServer(binary=binary, tls=files, metrics=True) as server:
        yield server


@pytest.fixture(scope="module")
def tls(binary: str | None, certs: Certs) -> Iterator[EtcdServer]:
    """TLS with server authentication only."""
    with EtcdServer(binary=binary, tls=TLSFiles(*certs.server, certs.ca_file)) as server:
        yield server


def _client(server: EtcdServer, certs: Certs) -> contextlib.AbstractAsyncContextManager[Client]:
    if not server.endpoint.startswith("https://"):
        return etcdanyio.open_etcd(server.endpoints, timeout=10)
    context = etcdanyio.tls_context(certs.ca_file, *certs.client)
    return etcdanyio.open_etcd(server.endpoints, ssl_context=context, timeout=10)


@pytest.mark.parametrize("kind", ["plain", "tls", "mtls"])
async def test_version_health_metrics(
    kind: str, binary: str | None, request: pytest.FixtureRequest, certs: Certs
) -> None:
    server: EtcdServer = request.getfixturevalue(kind)
    with anyio.fail_after(TIMEOUT):
        async with _client(server, certs) as client:
            version = await client.version()
            assert version.server == (await client.status()).version
            assert version.cluster == version.server.rsplit(".", 1)[0] + ".0"
            assert await client.version(server.endpoint) == version
            health = await client.http_health()
            assert (health.healthy, health.reason) == (True, "")
            assert 0 < health.took < TIMEOUT
            text = await client.metrics()
            assert "etcd_server_has_leader 1" in text.splitlines()
            # Which HTTP the member was asked in: HTTP/2 exactly when TLS (ALPN h2).
            endpoint = Endpoint.parse(server.endpoint)
            stream, h2 = await _http.connect(client._core.channel, endpoint, endpoint.tls)
            await stream.aclose()
            assert h2 is (kind != "plain")


async def test_a_plaintext_metrics_port_from_a_tls_client(mtls: EtcdServer, certs: Certs) -> None:
    metrics_url = mtls.members[0].metrics_url
    assert metrics_url is not None
    assert metrics_url.startswith("http://")
    with anyio.fail_after(TIMEOUT):
        async with _client(mtls, certs) as client:
            assert "etcd_server_has_leader 1" in (await client.metrics(metrics_url)).splitlines()
            # A bare host:port takes the client's scheme: TLS, which that port does not speak.
            bare = metrics_url.removeprefix("http://")
            with pytest.raises(etcdanyio.ConnectionFailedError):
                await client.metrics(bare)


async def test_an_unreachable_endpoint_is_skipped(plain: EtcdServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with etcdanyio.open_etcd(["http://127.0.0.1:1", *plain.endpoints]) as client:
            assert (await client.http_health()).healthy
            with pytest.raises(etcdanyio.ConnectionFailedError, match=re.escape("127.0.0.1:1")):
                await client.version("http://127.0.0.1:1")


async def test_etcd_resets_http2_on_a_plaintext_port(plain: EtcdServer) -> None:
    """Why plaintext is HTTP/1.1: etcd's cmux hands HTTP/2 to the gRPC server."""
    endpoint = Endpoint.parse(plain.endpoint)
    with anyio.fail_after(TIMEOUT):
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            with pytest.raises(etcdanyio.ProtocolViolationError, match="reset the HTTP/2 stream"):
                await _http.get_h2(stream, endpoint.authority, "/version")
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            response = await _http.get_h11(stream, endpoint.authority, "/version")
        assert response.status == 200


@pytest.mark.parametrize("kind", ["plain", "mtls"])
async def test_cancelled_requests_leave_no_socket(
    kind: str, binary: str | None, request: pytest.FixtureRequest, certs: Certs
) -> None:
    """Cancelled at random points (connect, handshake, request, response), then one more works."""
    server: EtcdServer = request.getfixturevalue(kind)
    rng = random.Random(os.urandom(8))
    with anyio.fail_after(60):
        async with _client(server, certs) as client:
            started = anyio.current_time()
            await client.version()  # the client's own connection is up: a baseline
            took = anyio.current_time() - started
            sockets = _open_sockets()
            calls = (client.version, client.http_health, client.metrics)
            cancelled = 0
            for _ in range(40):
                with anyio.move_on_after(rng.uniform(0, 2 * took)) as scope:
                    await rng.choice(calls)()
                cancelled += scope.cancelled_caught
                assert _open_sockets() == sockets
            assert cancelled
            assert (await client.http_health()).healthy


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count
