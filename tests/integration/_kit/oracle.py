"""
An independent oracle: reads and writes through etcd's JSON gateway with ``urllib`` only.

It never imports etcdanyio, so it shares no code (and no bug) with the client under test. On the
wire, keys and values are base64, int64 values are JSON strings, and zero-valued fields are left
out. Every call blocks: from async code use ``await anyio.to_thread.run_sync(oracle.get, key)``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any, NamedTuple

__all__ = ["KV", "Oracle", "OracleError", "Status", "prefix_range_end"]


class OracleError(Exception):
    """Raised when the gateway answers with an error status (etcd's message is kept verbatim)."""

    def __init__(self, http_status: int, code: int | None, message: str) -> None:
        super().__init__(f"HTTP {http_status}, gRPC code {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message


class KV(NamedTuple):
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


class Status(NamedTuple):
    member_id: int
    leader: int
    revision: int
    raft_term: int
    raft_index: int
    version: str


def prefix_range_end(prefix: bytes) -> bytes:
    """The ``range_end`` selecting the keys that start with ``prefix``, as Go's ``GetPrefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"  # empty or all 0xff: every key from ``prefix`` on
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _kv(raw: dict[str, Any]) -> KV:
    return KV(
        key=_unb64(raw.get("key")),
        value=_unb64(raw.get("value")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        version=int(raw.get("version", 0)),
    )


class Oracle:
    """
    One member's JSON gateway.

    :param endpoint: the member's client URL, ``http://127.0.0.1:PORT``
    :param timeout: socket timeout of each request, in seconds
    """

    def __init__(self, endpoint: str, *, timeout: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """
        POST ``body`` to ``/v3/<path>`` and return the decoded reply.

        :raises OracleError: on an HTTP error status from the gateway
        :raises OSError: if the member cannot be reached or does not answer in time
        """
        request = urllib.request.Request(
            f"{self.endpoint}/v3/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply: dict[str, Any] = json.loads(response.read())
                return reply
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    error = json.loads(exc.read())
                except ValueError:
                    error = {}
            raise OracleError(
                exc.code, error.get("code"), error.get("message", exc.reason)
            ) from None

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Put ``key`` and return the revision of the write."""
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("kv/put", body)["header"]["revision"])

    def get(self, key: bytes, *, revision: int = 0) -> tuple[bytes, int] | None:
        """Return ``(value, mod_revision)`` of ``key`` (linearizable), or ``None`` if absent."""
        body: dict[str, Any] = {"key": _b64(key)}
        if revision:
            body["revision"] = str(revision)
        kvs = self.call("kv/range", body).get("kvs", [])
        return (_kv(kvs[0]).value, _kv(kvs[0]).mod_revision) if kvs else None

    def range_prefix(self, prefix: bytes, *, revision: int = 0) -> list[KV]:
        """Return every key starting with ``prefix``, in key order."""
        body: dict[str, Any] = {
            "key": _b64(prefix or b"\x00"),
            "range_end": _b64(prefix_range_end(prefix)),
        }
        if revision:
            body["revision"] = str(revision)
        return [_kv(raw) for raw in self.call("kv/range", body).get("kvs", [])]

    def delete(self, key: bytes) -> int:
        """Delete ``key``; return how many keys were deleted (0 or 1)."""
        return int(self.call("kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def delete_prefix(self, prefix: bytes) -> int:
        """Delete every key starting with ``prefix``; return how many were deleted."""
        body = {"key": _b64(prefix or b"\x00"), "range_end": _b64(prefix_range_end(prefix))}
        return int(self.call("kv/deleterange", body).get("deleted", 0))

    def compact(self, revision: int, *, physical: bool = True) -> None:
        """Compact the key-value history up to ``revision``."""
        self.call("kv/compaction", {"revision": str(revision), "physical": physical})

    def status(self) -> Status:
        """Return this member's status."""
        raw = self.call("maintenance/status", {})
        return Status(
            member_id=int(raw["header"]["member_id"]),
            leader=int(raw.get("leader", 0)),
            revision=int(raw["header"].get("revision", 0)),
            raft_term=int(raw.get("raftTerm", 0)),
            raft_index=int(raw.get("raftIndex", 0)),
            version=str(raw.get("version", "")),
        )

    def revision(self) -> int:
        """Return the current revision of the key-value store (a linearizable read)."""
        return int(
            self.call("kv/range", {"key": _b64(b"\x00"), "limit": "1"})["header"]["revision"]
        )

    # Leases: the client has no lease API of its own yet, and the KV tests need real lease IDs.

    def lease_grant(self, ttl: int) -> int:
        """Grant a lease of ``ttl`` seconds and return its ID."""
        return int(self.call("lease/grant", {"TTL": str(ttl)})["ID"])

    def lease_revoke(self, lease: int) -> None:
        """Revoke ``lease`` (its keys are deleted)."""
        self.call("lease/revoke", {"ID": str(lease)})

    def lease_keys(self, lease: int) -> list[bytes]:
        """Return the keys attached to ``lease``, in key order (``[]`` if it does not exist)."""
        reply = self.call("lease/timetolive", {"ID": str(lease), "keys": True})
        return sorted(_unb64(key) for key in reply.get("keys", []))

    def leases(self) -> list[int]:
        """Return the IDs of every lease the member knows (``LeaseLeases``), sorted."""
        reply = self.call("lease/leases", {})
        return sorted(int(raw["ID"]) for raw in reply.get("leases", []))

    def lease_ttl(self, lease: int) -> int:
        """Return the remaining TTL of ``lease`` in seconds (``-1`` if it does not exist)."""
        return int(self.call("lease/timetolive", {"ID": str(lease)}).get("TTL", 0))
