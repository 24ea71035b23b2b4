"""TLS contexts for etcd endpoints."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from os import PathLike


def tls_context(
    ca_file: str | PathLike[str] | None = None,
    cert_file: str | PathLike[str] | None = None,
    key_file: str | PathLike[str] | None = None,
) -> ssl.SSLContext:
    """
    An SSL context for etcd: server verification against ``ca_file`` (the
    system's CAs if ``None``), a client certificate for mutual TLS when
    ``cert_file`` is given, and ALPN ``h2``.

    :raises ValueError: if ``key_file`` is given without ``cert_file``
    :raises OSError: if a file cannot be read
    :raises ssl.SSLError: if a file holds no usable certificate or key
    """
    if key_file is not None and cert_file is None:
        raise ValueError("key_file needs cert_file")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["h2"])
    return context
