"""
The Maintenance service: status, alarms, defragmentation, hashes, leader transfer, downgrade
and snapshots.

Calls about one member take ``endpoint=``, one of its client URLs (``"http://10.0.0.1:2379"``):
they are then sent on a short-lived connection to that member, closed afterwards. Without it
they go to the member the client is connected to.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import tempfile
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ._cluster import check_member_id
from ._codec_calls import decode_status_response
from ._error_table import translate
from ._grpc import GrpcError, TransportError
from ._lazy import etcdserverpb as pb  # imported on first use
from ._requests import check_int, check_seconds
from ._service import Service
from .errors import EtcdError, PermissionDeniedError, SnapshotError
from .types import Alarm, AlarmType, HashKVResult, HealthResult, Member, StatusResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence


_STATUS = "/etcdserverpb.Maintenance/Status"
_ALARM = "/etcdserverpb.Maintenance/Alarm"
_DEFRAGMENT = "/etcdserverpb.Maintenance/Defragment"
_HASH = "/etcdserverpb.Maintenance/Hash"
_HASH_KV = "/etcdserverpb.Maintenance/HashKV"
_MOVE_LEADER = "/etcdserverpb.Maintenance/MoveLeader"
_DOWNGRADE = "/etcdserverpb.Maintenance/Downgrade"
_SNAPSHOT = "/etcdserverpb.Maintenance/Snapshot"
_MEMBER_LIST = "/etcdserverpb.Cluster/MemberList"
_RANGE = "/etcdserverpb.KV/Range"

#: etcd ends a full snapshot with the sha256 of everything before it; the database itself is
#: a whole number of pages, so a full snapshot's size is 32 more than a multiple of 512.
SHA256_SIZE = 32
_WRITE_BUFFER = 1 << 20  # bytes gathered before one write to a file (one worker-thread hop)

#: the downgrade actions, by the name ``downgrade()`` takes (the names of etcd's enum, lower case)
_DOWNGRADE_ACTIONS = ("validate", "enable", "cancel")


class SupportsWrite(Protocol):
    """A binary file object: ``io.BytesIO``, ``open(path, "wb")``, or an async file."""

    def write(self, data: Any, /) -> object: ...


def _one(endpoint: object) -> list[str] | None:
    if endpoint is not None and not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str, got {endpoint!r} ({type(endpoint).__name__})")
    return None if endpoint is None else [endpoint]


def _alarm_type(value: object) -> AlarmType:
    if isinstance(value, AlarmType):
        return value
    if isinstance(value, str) and value.upper() in AlarmType.__members__:
        return AlarmType[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in set(AlarmType):
        return AlarmType(value)
    names = ", ".join(repr(n.lower()) for n in AlarmType.__members__)
    raise ValueError(f"alarm must be an AlarmType or one of {names}, got {value!r}")


class SnapshotVerifier:
    """
    Checks etcd's trailing sha256 while a snapshot streams by, in constant memory: the hash
    runs over everything but the last 32 bytes seen so far, which are held back.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._tail = b""
        #: bytes fed so far, the trailer included
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if len(chunk) >= SHA256_SIZE:
            self._hash.update(self._tail)
            self._hash.update(memoryview(chunk)[:-SHA256_SIZE])
            self._tail = chunk[-SHA256_SIZE:]
        else:
            data = self._tail + chunk
            self._hash.update(data[:-SHA256_SIZE])
            self._tail = data[-SHA256_SIZE:]

    def check(self) -> None:
        """
        :raises SnapshotError: if what was fed is not a full snapshot with a matching sha256
        """
        if self.size % 512 != SHA256_SIZE:
            raise SnapshotError(
                f"snapshot of {self.size} bytes has no sha256 trailer (a full etcd snapshot "
                f"is {SHA256_SIZE} bytes more than a multiple of 512): truncated or not a snapshot"
            )
        digest = self._hash.digest()
        if digest != self._tail:
            raise SnapshotError(
                f"snapshot sha256 mismatch: its {self.size - SHA256_SIZE} data bytes hash to "
                f"{digest.hex()}, its trailer says {self._tail.hex()}"
            )


class MaintenanceMixin(Service):
    """Maintenance calls, some of them on a connection to one given member."""

    async def status(self, endpoint: str | None = None) -> StatusResult:
        """
        What one member says about itself: version, database size, Raft state, the leader it
        follows and its alarms.

        Retried on unavailability (a read).

        :param endpoint: a client URL of the member to ask; ``None``: the member this client
            is connected to
        :return: ``.version``, ``.db_size``, ``.db_size_in_use``, ``.leader``, ``.raft_index``,
            ``.raft_term``, ``.raft_applied_index``, ``.is_learner``, ``.errors``, ``.header``
            and ``.member_id`` (the member that answered); ``.leader`` is an ID,
            :meth:`leader` gives the leader as a :class:`Member`
        :raises ConnectionFailedError: if ``endpoint`` cannot be reached

        .. versionadded:: 0.1
        """
        # StatusRequest has no fields: its encoding is empty.
        raw = await self._core.call_raw_at(_STATUS, b"", repeatable=True, endpoints=_one(endpoint))
        return decode_status_response(raw)

    async def leader(self, endpoint: str | None = None) -> Member | None:
        """
        The cluster's Raft leader as a :class:`Member` (name, URLs), as the member asked sees
        it: :meth:`status` names the leader by ID, and the member list (linearizable, from the
        same connection) gives the rest. Two reads.

        :param endpoint: a client URL of the member to ask; ``None``: the member this client
            is connected to
        :return: the leader, or ``None`` if the member knows of none (an election is under way)
            or it left the cluster between the two reads

        .. versionadded:: 0.1
        """
        leader_id = (await self.status(endpoint)).leader
        if not leader_id:
            return None
        response = await self._core.call_at(
            _MEMBER_LIST,
            pb.MemberListRequest(linearizable=True),
            pb.MemberListResponse,
            repeatable=True,
            endpoints=_one(endpoint),
        )
        for member in response.members:
            if member.id == leader_id:
                return Member.from_pb(member)
        return None

    async def _alarm_list(self, endpoints: Sequence[str] | None = None) -> list[Alarm]:
        request = pb.AlarmRequest(action=pb.AlarmRequestAlarmAction.GET)
        response = await self._core.call_at(
            _ALARM, request, pb.AlarmResponse, repeatable=True, endpoints=endpoints
        )
        return [Alarm.from_pb(a) for a in response.alarms]

    async def alarms(
        self, member_id: int = 0, alarm: AlarmType | str = AlarmType.NONE
    ) -> list[Alarm]:
        """
        The alarms raised in the cluster, on any member, or only those of ``member_id`` and of
        the type ``alarm``.

        :param member_id: only this member's alarms; ``0`` (the default): every member's
        :param alarm: only alarms of this type; ``AlarmType.NONE`` (the default): every type
        :return: one :class:`Alarm` (``.member_id``, ``.alarm``) per member and alarm type
        :raises ValueError: if ``alarm`` is not an alarm type or ``member_id`` is negative

        .. versionadded:: 0.1
        """
        member = check_member_id(member_id, zero=True)
        kind = _alarm_type(alarm)
        return [
            a
            for a in await self._alarm_list()
            if member in (0, a.member_id) and kind in (AlarmType.NONE, a.alarm)
        ]

    async def alarm_disarm(
        self, member_id: int = 0, alarm: AlarmType | str = AlarmType.NOSPACE
    ) -> list[Alarm]:
        """
        Clear alarms.

        Disarm a ``NOSPACE`` alarm only after freeing space (delete, :meth:`compact`, then
        :meth:`defragment` every member): etcd raises it again at the next write that does
        not fit in the quota.

        Not retried once sent (a write; disarming twice is harmless).

        :param member_id: the member whose alarm to clear; ``0`` (the default) means every
            member's alarms of that type (the alarms are listed first, then each is disarmed,
            as Go's client and ``etcdctl alarm disarm`` do)
        :param alarm: the type to clear; ``AlarmType.NONE`` means every type
        :return: the alarms that were disarmed (empty if none was raised)
        :raises ValueError: if ``alarm`` is not an alarm type or ``member_id`` is negative

        .. versionadded:: 0.1
        """
        member = check_member_id(member_id, zero=True)
        kind = _alarm_type(alarm)
        if member and kind is not AlarmType.NONE:
            targets = [Alarm(member, kind)]
        else:
            targets = await self.alarms(member, kind)
        disarmed: list[Alarm] = []
        for target in targets:
            request = pb.AlarmRequest(
                action=pb.AlarmRequestAlarmAction.DEACTIVATE,
                member_id=target.member_id,
                alarm=pb.AlarmType(int(target.alarm)),
            )
            response = await self._core.call(_ALARM, request, pb.AlarmResponse, repeatable=False)
            disarmed += [Alarm.from_pb(a) for a in response.alarms]
        return disarmed

    async def alarm_activate(
        self, member_id: int, alarm: AlarmType | str = AlarmType.NOSPACE
    ) -> list[Alarm]:
        """
        Raise an alarm on a member, as etcd itself does when the backend quota is exhausted
        (``NOSPACE``) or a consistency check fails (``CORRUPT``). For tests and drills:
        while ``NOSPACE`` is raised the cluster refuses every write that is not a delete
        (:class:`NoSpaceError`); ``CORRUPT`` makes it refuse nearly everything. Clear it with
        :meth:`alarm_disarm`.

        Not retried once sent (a write; raising it twice is harmless).

        :param member_id: the member to raise it on (``Member.id``); etcd does not check that
            such a member exists
        :param alarm: ``AlarmType.NOSPACE`` or ``AlarmType.CORRUPT`` (or their names)
        :return: the alarm as raised (also when it was raised already)
        :raises ValueError: if ``member_id`` is 0 or ``alarm`` is ``NONE`` or no alarm type

        .. versionadded:: 0.1
        """
        member = check_member_id(member_id)
        kind = _alarm_type(alarm)
        if kind is AlarmType.NONE:
            raise ValueError("alarm must be NOSPACE or CORRUPT to activate, got NONE")
        request = pb.AlarmRequest(
            action=pb.AlarmRequestAlarmAction.ACTIVATE,
            member_id=member,
            alarm=pb.AlarmType(int(kind)),
        )
        response = await self._core.call(_ALARM, request, pb.AlarmResponse, repeatable=False)
        return [Alarm.from_pb(a) for a in response.alarms]

    async def defragment(self, endpoint: str | None = None) -> None:
        """
        Rewrite one member's database file to return its free pages to the file system
        (``.db_size`` shrinks towards ``.db_size_in_use``).

        The member serves nothing else while it defragments, so do one member at a time.
        Not retried once sent.

        :param endpoint: a client URL of the member; ``None``: the member this client is
            connected to

        .. versionadded:: 0.1
        """
        await self._core.call_at(
            _DEFRAGMENT,
            pb.DefragmentRequest(),
            pb.DefragmentResponse,
            repeatable=False,
            endpoints=_one(endpoint),
        )

    async def hash_kv(self, revision: int = 0, *, endpoint: str | None = None) -> HashKVResult:
        """
        A hash of one member's key-value history up to ``revision``: equal on every member
        for the same revision and compaction point, unless a member's data is corrupt.

        Retried on unavailability (a read). The hash revision field of etcd 3.6+ is not in
        this client's protocol version (3.5).

        :param revision: hash up to this revision; ``0``: the latest
        :param endpoint: a client URL of the member; ``None``: the member this client is
            connected to
        :return: ``.hash``, ``.compact_revision`` and ``.header``
        :raises CompactedError: if ``revision`` is compacted
        :raises FutureRevisionError: if the member has not reached ``revision`` yet

        .. versionadded:: 0.1
        """
        request = pb.HashKvRequest(revision=check_int(revision, "revision"))
        response = await self._core.call_at(
            _HASH_KV, request, pb.HashKvResponse, repeatable=True, endpoints=_one(endpoint)
        )
        return HashKVResult.from_pb(response)

    async def hash(self, endpoint: str | None = None) -> int:
        """
        A hash of one member's whole backend (for tests; members' hashes usually differ, as
        their databases are laid out differently). Prefer :meth:`hash_kv`.

        .. versionadded:: 0.1
        """
        response = await self._core.call_at(
            _HASH, pb.HashRequest(), pb.HashResponse, repeatable=True, endpoints=_one(endpoint)
        )
        return response.hash

    async def move_leader(self, member_id: int) -> None:
        """
        Hand the leadership over to another voting member; returns once it leads.

        Only the leader can do this, so the call goes to the current leader: asked through
        :meth:`status`, found in :meth:`members`, and reached at its first reachable client
        URL on a short-lived connection. Those URLs must be reachable from this client.

        Not retried once sent.

        :param member_id: the ID of the member that should lead
        :raises RpcError: ``etcdserver: bad leader transferee`` for an unknown member or a
            learner; ``etcdserver: not leader`` if the leadership changed meanwhile
        :raises ValueError: if ``member_id`` is not a positive 64-bit int

        .. versionadded:: 0.1
        """
        target = check_member_id(member_id)
        status = await self.status()
        endpoints: list[str] | None = None
        if status.leader and status.leader != status.member_id:
            listing = await self._core.call(
                _MEMBER_LIST,
                pb.MemberListRequest(linearizable=True),
                pb.MemberListResponse,
                repeatable=True,
            )
            leader = next((m for m in listing.members if m.id == status.leader), None)
            # Unknown leader or one without client URLs: ask our member; etcd answers "not leader".
            endpoints = list(leader.client_ur_ls) if leader is not None else None
        await self._core.call_at(
            _MOVE_LEADER,
            pb.MoveLeaderRequest(target_id=target),
            pb.MoveLeaderResponse,
            repeatable=False,
            endpoints=endpoints or None,
        )

    async def downgrade(self, action: str, version: str = "") -> str:
        """
        Validate, start or cancel a downgrade of the cluster (etcd 3.5+).

        :param action: ``"validate"`` (may the cluster downgrade to ``version``?),
            ``"enable"`` (start the downgrade) or ``"cancel"`` (stop it)
        :param version: the target version, e.g. ``"3.4.0"`` (one minor version below the
            cluster's); needed for ``"validate"`` and ``"enable"``
        :return: the cluster version etcd reports
        :raises RpcError: ``etcdserver: invalid downgrade target version``,
            ``etcdserver: no inflight downgrade job``, ...
        :raises ValueError: for another action, or a missing version

        .. versionadded:: 0.1
        """
        name = _downgrade_action(action)
        _check_version(version)
        if name != "cancel" and not version:
            raise ValueError(f"downgrade action {name!r} needs a target version, e.g. '3.4.0'")
        request = pb.DowngradeRequest(
            action=pb.DowngradeRequestDowngradeAction[name.upper()], version=version
        )
        response = await self._core.call(
            _DOWNGRADE, request, pb.DowngradeResponse, repeatable=False
        )
        return response.version

    async def health(
        self,
        endpoint: str | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 -- a late answer is a result here, not an error
    ) -> HealthResult:
        """
        Whether a member is healthy, as ``etcdctl endpoint health`` decides: a linearizable
        read (of the key ``health``) goes through it within ``timeout`` seconds, and no alarm is
        raised in the cluster. A permission error on the read counts as healthy: the member
        answered after consensus.

        Never raises for an unhealthy member; ``.reason`` says what failed.

        :param endpoint: a client URL of the member; ``None``: the member this client is
            connected to
        :param timeout: seconds the whole check may take
        :return: ``.healthy``, ``.reason`` (empty when healthy) and ``.took`` (seconds)

        .. versionadded:: 0.1
        """
        check_seconds(timeout, "timeout")
        endpoints = _one(endpoint)
        started = anyio.current_time()
        reason = ""
        with anyio.move_on_after(timeout) as scope:
            try:
                await self._core.call_at(
                    _RANGE,
                    pb.RangeRequest(key=b"health"),
                    pb.RangeResponse,
                    repeatable=True,
                    endpoints=endpoints,
                )
            except PermissionDeniedError:
                pass
            except (EtcdError, TimeoutError) as exc:
                reason = f"read failed: {exc}"
            if not reason:
                try:
                    raised = await self._alarm_list(endpoints)
                except (EtcdError, TimeoutError) as exc:
                    reason = f"alarm list failed: {exc}"
                else:
                    if raised:
                        reason = "active alarm(s): " + ", ".join(
                            f"{a.alarm.name} on member {a.member_id:x}" for a in raised
                        )
        if scope.cancelled_caught:
            reason = f"no answer within {timeout} s"
        return HealthResult(not reason, reason, anyio.current_time() - started)

    async def snapshot(
        self,
        dest: str | os.PathLike[str] | SupportsWrite,
        *,
        progress: Callable[[int], object] | None = None,
        endpoint: str | None = None,
    ) -> int:
        """
        Stream a member's whole backend database into ``dest``, in constant memory, and check
        etcd's trailing sha256. ``etcdutl snapshot restore`` turns the file into a data dir.

        The stream is bounded only by the caller's cancel scope (the client's default
        ``timeout`` does not apply). It is not retried.

        :param dest: a path: the snapshot goes to a temporary file beside it, renamed to it
            once complete and verified, and removed on any failure or cancellation; or a
            binary file object with ``write(bytes)`` (``io.BytesIO``, ``open(p, "wb")``, or an
            async file whose ``write`` is awaited), left as far as it got on failure
        :param progress: called with the number of bytes received so far after each chunk;
            an exception it raises ends the snapshot (and propagates)
        :param endpoint: a client URL of the member; ``None``: the member this client is
            connected to
        :return: the number of bytes written (the size of the snapshot, trailer included)
        :raises SnapshotError: if the stream is truncated or its sha256 does not match
        :raises TypeError: if ``dest`` is neither a path nor writable

        .. versionadded:: 0.1
        """
        endpoints = _one(endpoint)
        if isinstance(dest, (str, os.PathLike)):
            return await self._snapshot_to_path(os.fspath(dest), progress, endpoints)
        write = getattr(dest, "write", None)
        if not callable(write):
            raise TypeError(
                f"dest must be a path or a binary file object, got {dest!r} ({type(dest).__name__})"
            )

        async def sink(chunk: bytes) -> None:
            data: bytes | memoryview = chunk
            while True:
                result = write(data)
                if inspect.isawaitable(result):
                    result = await result
                # A raw file may take a part (``RawIOBase.write``); others take all of it.
                if not (isinstance(result, int) and 0 < result < len(data)):
                    break
                data = memoryview(data)[result:]

        return await self._stream_snapshot(sink, progress, endpoints)

    async def _snapshot_to_path(
        self,
        path: str,
        progress: Callable[[int], object] | None,
        endpoints: Sequence[str] | None,
    ) -> int:
        fd, temporary = await anyio.to_thread.run_sync(_temporary_beside, path)
        file = anyio.wrap_file(os.fdopen(fd, "wb"))
        pending: list[bytes] = []
        pending_size = 0

        async def sink(chunk: bytes) -> None:
            nonlocal pending_size
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _WRITE_BUFFER:
                await flush()

        async def flush() -> None:
            nonlocal pending_size
            data = b"".join(pending)
            pending.clear()
            pending_size = 0
            await file.write(data)

        try:
            size = await self._stream_snapshot(sink, progress, endpoints)
            await flush()
            await file.flush()
            await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
            await file.aclose()
            await anyio.to_thread.run_sync(os.replace, temporary, path)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await file.aclose()
                await anyio.to_thread.run_sync(_unlink_quietly, temporary)
            raise
        return size

    async def _stream_snapshot(
        self,
        sink: Callable[[bytes], Awaitable[None]],
        progress: Callable[[int], object] | None,
        endpoints: Sequence[str] | None,
    ) -> int:
        verifier = SnapshotVerifier()
        try:
            async with self._core.open_stream(_SNAPSHOT, b"", endpoints=endpoints) as call:
                while (raw := await call.recv_message()) is not None:
                    chunk = pb.SnapshotResponse.parse(raw).blob
                    verifier.feed(chunk)
                    await sink(chunk)
                    if progress is not None:
                        progress(verifier.size)
        except (GrpcError, TransportError) as exc:
            raise translate(exc, write=False) from exc
        verifier.check()
        return verifier.size


def _downgrade_action(action: object) -> str:
    name = action.lower() if isinstance(action, str) else action
    if not isinstance(name, str) or name not in _DOWNGRADE_ACTIONS:
        raise ValueError(
            f"downgrade action must be 'validate', 'enable' or 'cancel', got {action!r}"
        )
    return name


def _check_version(version: object) -> None:
    if not isinstance(version, str):
        raise TypeError(f"version must be a str, got {version!r} ({type(version).__name__})")


def _temporary_beside(path: str) -> tuple[int, str]:
    # In the same directory, so that the final rename is atomic (same file system).
    directory, name = os.path.split(os.path.abspath(path))
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
