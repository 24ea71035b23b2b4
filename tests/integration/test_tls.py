"""
TLS against real etcd members (``etcdanyio.testing`` with ``tls=TLSFiles(...)``), certificates
from a trustme CA: server authentication, mutual TLS, ALPN ``h2``, ``tls_server_hostname``, and
TLS failures that must surface as ``ConnectionFailedError`` naming the TLS problem, quickly.
"""

from __future__ import annotations

import datetime
import ssl
import sys
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest
import trustme

import etcdanyio
from etcdanyio.testing import EtcdServer, TLSFiles

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

#: connect_timeout of every client here: a TLS failure must be reported well before it
CONNECT_TIMEOUT = 3.0


class Certs:
    """A CA and what it issued, as PEM files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem)
        self.server = self.issue("server", "127.0.0.1", "localhost")
        self.client = self.issue("client", "etcdanyio-test-client")

    def _write(self, name: str, blob: trustme.Blob) -> str:
        path = self.directory / name
        blob.write_to_path(path)
        return str(path)

    def issue(
        self, name: str, *identities: str, not_after: datetime.datetime | None = None
    ) -> tuple[str, str]:
        """Issue a leaf certificate; return ``(cert_file, key_file)``."""
        leaf = self.ca.issue_cert(*identities, not_after=not_after)
        cert_file = self._write(f"{name}.pem", leaf.cert_chain_pems[0])
        return cert_file, self._write(f"{name}.key", leaf.private_key_pem)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(certs: Certs) -> Iterator[EtcdServer]:
    """A member serving TLS with server authentication only."""
    with EtcdServer(tls=TLSFiles(*certs.server, certs.ca_file)) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(certs: Certs) -> Iterator[EtcdServer]:
    """A member that requires client certificates issued by the CA."""
    files = TLSFiles(
        *certs.server,
        certs.ca_file,
        client_cert_auth=True,
        client_cert_file=certs.client[0],
        client_key_file=certs.client[1],
    )
    with EtcdServer(tls=files) as server:
        yield server


def _key() -> bytes:
    return f"test_tls/{uuid.uuid4().hex}".encode()


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and everything it was caused by: ``causes``, ``__cause__``, ``__context__``."""
    seen: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        if any(current is other for other in seen):
            continue
        seen.append(current)
        pending += getattr(current, "causes", [])
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions
    return seen


def _names_tls_failure(error: BaseException) -> bool:
    words = ("certificate", "alert", "handshake")
    return any(
        isinstance(e, ssl.SSLError) or any(word in str(e).lower() for word in words)
        for e in _chain(error)
    )


async def _put_get(client: etcdanyio.Client) -> None:
    key = _key()
    await client.put(key, b"over tls")
    kv = await client.get(key)
    assert kv is not None
    assert kv.value == b"over tls"


def _alpn(client: etcdanyio.Client) -> str | None:
    connection = client._core.channel.connection
    assert connection is not None
    return connection._wire.alpn_protocol()


async def _fails_to_connect(
    endpoint: str, context: ssl.SSLContext | None
) -> etcdanyio.ConnectionFailedError:
    """Open a client and get through it; return the error, raised before ``CONNECT_TIMEOUT``."""
    start = anyio.current_time()
    with anyio.fail_after(CONNECT_TIMEOUT + 2):
        async with etcdanyio.open_etcd(
            endpoint, ssl_context=context, connect_timeout=CONNECT_TIMEOUT
        ) as client:
            with pytest.raises(etcdanyio.ConnectionFailedError) as info:
                await client.get(_key())
    assert anyio.current_time() - start < CONNECT_TIMEOUT, "not reported before connect_timeout"
    chain = _chain(info.value)
    assert not any(isinstance(e, TimeoutError) for e in chain), f"a bare timeout: {chain!r}"
    return info.value


# -- server authentication -------------------------------------------------------------------------


async def test_put_get_over_https_negotiates_h2(certs: Certs, tls_server: EtcdServer) -> None:
    assert tls_server.endpoint.startswith("https://127.0.0.1:")
    context = etcdanyio.tls_context(ca_file=certs.ca_file)
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(
            tls_server.endpoints, ssl_context=context, connect_timeout=CONNECT_TIMEOUT
        ) as client:
            await _put_get(client)
            assert _alpn(client) == "h2"


async def test_https_endpoint_without_ssl_context_verifies_against_system_cas(
    tls_server: EtcdServer,
) -> None:
    # https:// without an ssl_context verifies against the system's CAs, which lack trustme's.
    error = await _fails_to_connect(tls_server.endpoint, None)
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(error))


async def test_wrong_ca_fails_with_certificate_verify_error(tls_server: EtcdServer) -> None:
    other = trustme.CA()
    context = ssl.create_default_context(cadata=other.cert_pem.bytes().decode())
    error = await _fails_to_connect(tls_server.endpoint, context)
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in error.causes), error.causes
    assert error.applied is False


async def test_tls_server_hostname_checks_a_localhost_only_cert(certs: Certs) -> None:
    cert_file, key_file = certs.issue("localhost-only", "localhost")
    with anyio.fail_after(20):
        async with EtcdServer(tls=TLSFiles(cert_file, key_file, certs.ca_file)) as server:
            assert server.endpoint.startswith("https://127.0.0.1:")
            context = etcdanyio.tls_context(ca_file=certs.ca_file)
            async with etcdanyio.open_etcd(
                server.endpoints,
                ssl_context=context,
                tls_server_hostname="localhost",
                connect_timeout=CONNECT_TIMEOUT,
            ) as client:
                await _put_get(client)
                assert _alpn(client) == "h2"
            # Without it, the IP address is checked against the certificate, and is not in it.
            error = await _fails_to_connect(server.endpoint, context)
            mismatch = [e for e in _chain(error) if isinstance(e, ssl.SSLCertVerificationError)]
            assert mismatch, _chain(error)
            assert "127.0.0.1" in str(mismatch[0])


async def test_https_endpoint_on_plaintext_member_fails_fast(
    certs: Certs, etcd_server: EtcdServer
) -> None:
    assert etcd_server.endpoint.startswith("http://")
    endpoint = etcd_server.endpoint.replace("http://", "https://", 1)
    context = etcdanyio.tls_context(ca_file=certs.ca_file)
    start = anyio.current_time()
    with anyio.fail_after(3):
        async with etcdanyio.open_etcd(
            endpoint, ssl_context=context, connect_timeout=1.0
        ) as client:
            with pytest.raises(etcdanyio.ConnectionFailedError) as info:
                await client.get(_key())
    assert anyio.current_time() - start < 2.0
    assert info.value.causes, "the endpoint's error is kept"


# -- mutual TLS ------------------------------------------------------------------------------------


async def test_mtls_with_client_cert(certs: Certs, mtls_server: EtcdServer) -> None:
    context = etcdanyio.tls_context(certs.ca_file, *certs.client)
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(
            mtls_server.endpoints, ssl_context=context, connect_timeout=CONNECT_TIMEOUT
        ) as client:
            await _put_get(client)
            assert _alpn(client) == "h2"


async def test_mtls_without_client_cert_names_the_tls_failure(
    certs: Certs, mtls_server: EtcdServer
) -> None:
    context = etcdanyio.tls_context(ca_file=certs.ca_file)
    error = await _fails_to_connect(mtls_server.endpoint, context)
    assert _names_tls_failure(error), _chain(error)


async def test_mtls_with_expired_client_cert_names_the_tls_failure(
    certs: Certs, mtls_server: EtcdServer
) -> None:
    expired = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    cert_file, key_file = certs.issue("expired-client", "expired-client", not_after=expired)
    context = etcdanyio.tls_context(certs.ca_file, cert_file, key_file)
    error = await _fails_to_connect(mtls_server.endpoint, context)
    assert _names_tls_failure(error), _chain(error)


async def test_mtls_with_client_cert_of_another_ca_names_the_tls_failure(
    certs: Certs, mtls_server: EtcdServer, tmp_path: Path
) -> None:
    stranger = Certs(tmp_path)
    context = etcdanyio.tls_context(certs.ca_file, *stranger.client)
    error = await _fails_to_connect(mtls_server.endpoint, context)
    assert _names_tls_failure(error), _chain(error)


# -- the harness itself ----------------------------------------------------------------------------


def test_harness_etcdctl_over_mtls(mtls_server: EtcdServer) -> None:
    assert mtls_server.endpoint.startswith("https://")
    key = _key().decode()
    mtls_server.etcdctl("put", key, "via etcdctl")
    assert mtls_server.etcdctl("get", key, "--print-value-only").strip() == "via etcdctl"


def test_harness_restart_keeps_tls(certs: Certs) -> None:
    with EtcdServer(tls=TLSFiles(*certs.server, certs.ca_file)) as server:
        server.etcdctl("put", "k", "v")
        endpoint = server.endpoint
        server.kill()
        server.restart()
        assert server.endpoint == endpoint
        assert server.etcdctl("get", "k", "--print-value-only").strip() == "v"


def test_tls_files_validation(certs: Certs) -> None:
    with pytest.raises(ValueError, match="client_cert_file"):
        TLSFiles(*certs.server, certs.ca_file, client_cert_auth=True)
    with pytest.raises(ValueError, match="client_cert_file"):
        TLSFiles(*certs.server, certs.ca_file, client_key_file=certs.client[1])
    with pytest.raises(FileNotFoundError):  # at construction, not half-way through a start
        EtcdServer(tls=TLSFiles(*certs.server, str(certs.directory / "missing.pem")))


# -- tls_context -----------------------------------------------------------------------------------


def test_tls_context_validates_arguments(certs: Certs) -> None:
    with pytest.raises(ValueError, match="cert_file"):
        etcdanyio.tls_context(certs.ca_file, key_file=certs.client[1])
    context = etcdanyio.tls_context(certs.ca_file, *certs.client)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
