"""
Everything etcdanyio raises for a server or transport failure.

Server errors are mapped by etcd's **exact** message string (the gRPC code of
several changed between etcd versions), falling back to the gRPC status. The
strings are those of etcd's ``api/v3rpc/rpctypes/error.go``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._grpc import ConnectionLostError as _GrpcConnectionLost
from ._grpc import (
    GrpcError,
    MessageTooLargeError,
    ProtocolViolation,
    Status,
    TransportError,
    UnreachableError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AuthError",
    "AuthNotEnabledError",
    "AuthenticationError",
    "BadLeaderTransfereeError",
    "ClusterError",
    "ClusterIDMismatchError",
    "ClusterVersionUnavailableError",
    "CompactedError",
    "ConnectionFailedError",
    "ConnectionLostError",
    "CorruptError",
    "DeadlineExceededError",
    "DowngradeError",
    "DowngradeInProgressError",
    "DuplicateKeyError",
    "ElectionError",
    "ElectionNoLeaderError",
    "ElectionNotLeaderError",
    "EmptyKeyError",
    "EtcdError",
    "FutureRevisionError",
    "InvalidAuthMgmtError",
    "InvalidAuthTokenError",
    "InvalidClientAPIVersionError",
    "InvalidDowngradeTargetVersionError",
    "InvalidRequestError",
    "InvalidSortOptionError",
    "KeyNotFoundError",
    "LeaderChangedError",
    "LearnerNotReadyError",
    "LearnerUnsupportedError",
    "LeaseError",
    "LeaseExistsError",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "MemberBadURLsError",
    "MemberError",
    "MemberExistsError",
    "MemberNotEnoughStartedError",
    "MemberNotFoundError",
    "MemberNotLeaderError",
    "MemberNotLearnerError",
    "NoInflightDowngradeError",
    "NoLeaderError",
    "NoSpaceError",
    "NotCapableError",
    "PeerURLExistsError",
    "PermissionDeniedError",
    "PermissionNotGivenError",
    "PermissionNotGrantedError",
    "ProtocolViolationError",
    "RequestCanceledError",
    "RequestTimedOutError",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "RoleEmptyError",
    "RoleExistsError",
    "RoleNotFoundError",
    "RoleNotGrantedError",
    "RootRoleNotExistError",
    "RootUserNotExistError",
    "RpcError",
    "ServerStoppedError",
    "SnapshotError",
    "Status",
    "TooManyLearnersError",
    "TooManyOpsError",
    "TooManyRequestsError",
    "UnavailableError",
    "UnhealthyClusterError",
    "UnsupportedError",
    "UserEmptyError",
    "UserExistsError",
    "UserNotFoundError",
    "ValueProvidedError",
    "WatchCanceledError",
    "WatchCompactedError",
    "WrongDowngradeVersionFormatError",
]


def _rebuild(cls: type[EtcdError], args: tuple[Any, ...]) -> EtcdError:
    """Unpickle an error without calling its ``__init__`` (its signature varies by class)."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class EtcdError(Exception):
    """
    Raised for any server or transport failure.

    Every error survives ``pickle`` and ``copy.copy`` with its message, ``.applied`` and the
    fields of its class (``.status``, ``.compact_revision``, ...), so it can cross a process
    boundary (``ProcessPoolExecutor``); the cause chain and traceback do not travel.

    :ivar message: etcd's own text, verbatim (or the transport's description)
    :ivar applied: ``False`` if the request certainly did not take effect,
        ``None`` if that is unknown (it was sent, then the answer was lost);
        ``True`` is never claimed for an error
    """

    def __init__(self, message: str, *, applied: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.applied = applied

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls ``cls(*self.args)``, which fails for every class whose
        # __init__ takes more than the message; restore the instance's fields instead.
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


class ConnectionFailedError(EtcdError):
    """Raised when no endpoint could be reached; ``causes`` keeps each endpoint's error."""

    def __init__(
        self,
        message: str,
        *,
        applied: bool | None = False,
        causes: Sequence[BaseException] = (),
    ) -> None:
        super().__init__(message, applied=applied)
        self.causes = list(causes)


class ConnectionLostError(ConnectionFailedError):
    """Raised when the connection broke while the request was in flight."""


class ProtocolViolationError(EtcdError):
    """Raised when the server broke HTTP/2 or gRPC framing rules."""


class RpcError(EtcdError):
    """
    Raised when etcd answered with a non-OK gRPC status.

    :ivar status: the gRPC status (:class:`etcdanyio.Status`)
    """

    def __init__(self, status: Status, message: str, *, applied: bool | None = None) -> None:
        super().__init__(message, applied=applied)
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.status.name})" if self.message else self.status.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status.name}, {self.message!r})"


# -- requests etcd refuses as malformed ---------------------------------------------------------


class InvalidRequestError(RpcError):
    """Raised when etcd refuses a request as malformed; the family of the classes below."""


class EmptyKeyError(InvalidRequestError):
    """Raised when a request has no key (``etcdserver: key is not provided``)."""


class KeyNotFoundError(InvalidRequestError):
    """Raised when a put with ``ignore_value``/``ignore_lease`` names a key that does not exist."""


class ValueProvidedError(InvalidRequestError):
    """Raised when a put with ``ignore_value=True`` also carries a value."""


class LeaseProvidedError(InvalidRequestError):
    """Raised when a put with ``ignore_lease=True`` also carries a lease."""


class TooManyOpsError(InvalidRequestError):
    """Raised when a transaction has more operations than etcd's ``--max-txn-ops``."""


class DuplicateKeyError(InvalidRequestError):
    """Raised when a transaction changes the same key twice."""


class InvalidSortOptionError(InvalidRequestError):
    """Raised when a range read has a sort order or target etcd does not know (etcd 3.6+)."""


class InvalidClientAPIVersionError(InvalidRequestError):
    """Raised when the client's API version header is malformed (etcd 3.6+)."""


# -- revisions, quotas, load --------------------------------------------------------------------


class CompactedError(RpcError):
    """Raised when a read asks for a revision older than the compaction point."""

    def __init__(
        self,
        status: Status,
        message: str,
        *,
        applied: bool | None = None,
        compact_revision: int = 0,
    ) -> None:
        super().__init__(status, message, applied=applied)
        #: the compaction revision, when etcd says it (0 when unknown)
        self.compact_revision = compact_revision


class FutureRevisionError(RpcError):
    """Raised when a read asks for a revision that does not exist yet."""


class NoSpaceError(RpcError):
    """Raised when the backend quota is exhausted (NOSPACE alarm); reads and deletes still work."""


class TooManyRequestsError(RpcError):
    """Raised when etcd sheds load (``etcdserver: too many requests``); never retried."""


class RequestTooLargeError(RpcError):
    """Raised when a request is over etcd's ``--max-request-bytes`` (or gRPC's limit)."""


class ResponseTooLargeError(RpcError):
    """
    Raised when etcd's answer is over the client's ``max_receive_message``. For a write, etcd
    has applied it or not before answering: ``applied`` is ``None``.
    """


# -- leases -------------------------------------------------------------------------------------


class LeaseError(RpcError):
    """Raised when etcd refuses a lease operation; the family of the classes below."""


class LeaseNotFoundError(LeaseError):
    """Raised when the lease named in a request does not exist (expired or revoked)."""


class LeaseExistsError(LeaseError):
    """Raised when a lease is granted with an ID that is in use (``lease already exists``)."""


class LeaseTTLTooLargeError(LeaseError):
    """Raised when a lease's TTL is over etcd's maximum (9,000,000,000 s)."""


# -- membership and cluster-wide state ----------------------------------------------------------


class ClusterError(RpcError):
    """Raised when etcd refuses a cluster or maintenance operation; the family below."""


class MemberError(ClusterError):
    """Raised when etcd refuses a membership change; the family of the classes below."""


class MemberExistsError(MemberError):
    """Raised when a member is added with an ID that is taken."""


class PeerURLExistsError(MemberError):
    """Raised when a member is added or updated with a peer URL another member has."""


class MemberNotEnoughStartedError(MemberError):
    """Raised when a membership change would leave too few started members for a quorum."""


class MemberBadURLsError(MemberError):
    """Raised when the peer URLs of a membership change are invalid."""


class MemberNotFoundError(MemberError):
    """Raised when the member ID named in a cluster call is not a member."""


class MemberNotLearnerError(MemberError):
    """Raised when a member that is not a learner is promoted."""


class LearnerNotReadyError(MemberError):
    """
    Raised when a learner is promoted before it has caught up with the leader's log; promoting
    it again later, once it has, succeeds.
    """


class TooManyLearnersError(MemberError):
    """Raised when adding a learner would exceed etcd's limit of learners (1 by default)."""


class ClusterIDMismatchError(ClusterError):
    """Raised when the request's cluster ID is not this cluster's (etcd 3.5.5+)."""


class MemberNotLeaderError(ClusterError):
    """Raised when a call that only the Raft leader serves reached another member."""


class BadLeaderTransfereeError(ClusterError):
    """Raised when leadership is moved to an unknown member or a learner."""


class CorruptError(ClusterError):
    """Raised when the cluster has a ``CORRUPT`` alarm: a member's data diverged."""


class DowngradeError(ClusterError):
    """Raised when etcd refuses a downgrade action; the family of the classes below."""


class WrongDowngradeVersionFormatError(DowngradeError):
    """Raised when a downgrade target is not a ``major.minor`` version."""


class InvalidDowngradeTargetVersionError(DowngradeError):
    """Raised when the downgrade target is not the cluster's previous minor version."""


class DowngradeInProgressError(DowngradeError):
    """Raised when a downgrade is enabled while one is in progress."""


class NoInflightDowngradeError(DowngradeError):
    """Raised when a downgrade is cancelled while none is in progress."""


class ClusterVersionUnavailableError(DowngradeError):
    """Raised when the cluster version is not known yet during a downgrade."""


# -- auth ---------------------------------------------------------------------------------------


class AuthError(RpcError):
    """Raised when etcd refuses a request for an auth reason; the family of the classes below."""


class AuthenticationError(AuthError):
    """Raised when the credentials are wrong or missing."""


class InvalidAuthTokenError(AuthenticationError):
    """Raised when the auth token expired or the auth store changed; the client re-authenticates."""


class UserEmptyError(AuthenticationError):
    """Raised when auth is enabled and the request carries no user (no credentials given)."""


class PermissionDeniedError(AuthError):
    """Raised when the authenticated user may not do this."""


class AuthNotEnabledError(AuthError):
    """Raised when authentication is used while auth is disabled."""


class RootUserNotExistError(AuthError):
    """Raised when auth is enabled before a ``root`` user exists."""


class RootRoleNotExistError(AuthError):
    """Raised when auth is enabled while the ``root`` user lacks the ``root`` role."""


class UserExistsError(AuthError):
    """Raised when a user is added under a name that is taken."""


class UserNotFoundError(AuthError):
    """Raised when the user named does not exist."""


class RoleExistsError(AuthError):
    """Raised when a role is added under a name that is taken."""


class RoleNotFoundError(AuthError):
    """Raised when the role named does not exist."""


class RoleEmptyError(AuthError):
    """Raised when a role name is empty."""


class PermissionNotGivenError(AuthError):
    """Raised when a permission grant carries no permission."""


class RoleNotGrantedError(AuthError):
    """Raised when a role is revoked from a user that does not have it."""


class PermissionNotGrantedError(AuthError):
    """Raised when a permission is revoked from a role that does not have it."""


class InvalidAuthMgmtError(AuthError):
    """Raised for a forbidden auth change (e.g. revoking ``root`` from the root user)."""


# -- availability -------------------------------------------------------------------------------


class UnavailableError(RpcError):
    """Raised when the member cannot serve the request now (no leader, stopping, timed out)."""


class NoLeaderError(UnavailableError):
    """Raised when the member has no leader (``etcdserver: no leader``)."""


class LeaderChangedError(UnavailableError):
    """Raised when the leader changed while the request was being served."""


class NotCapableError(UnavailableError):
    """Raised when the cluster version does not support the request yet."""


class ServerStoppedError(UnavailableError):
    """Raised when the member is stopping."""


class RequestTimedOutError(UnavailableError):
    """Raised when etcd gave up waiting for the request to commit or apply (its own timeout)."""


class UnhealthyClusterError(UnavailableError):
    """Raised when a membership change is refused because the cluster is not healthy."""


class LearnerUnsupportedError(UnavailableError):
    """Raised when a learner is asked for something only voting members serve."""


class DeadlineExceededError(RpcError, TimeoutError):
    """Raised when the server gave up on the request's deadline; it is also a ``TimeoutError``."""


class RequestCanceledError(RpcError):
    """Raised when etcd cancelled the request (``etcdserver: request canceled``)."""


class WatchCanceledError(RpcError):
    """Raised from a watch that etcd cancelled without saying why."""


# -- the v3election service ---------------------------------------------------------------------


class ElectionError(RpcError):
    """Raised when etcd's v3election service refuses a call; the family of the classes below."""


class ElectionNoLeaderError(ElectionError):
    """Raised by the ``Leader`` RPC when nobody leads the election."""


class ElectionNotLeaderError(ElectionError):
    """Raised by ``Proclaim`` when the leader key given no longer leads the election."""


# -- not server answers -------------------------------------------------------------------------


class UnsupportedError(RpcError):
    """Raised when the server does not implement a call; the message names the version needed."""


#: The etcd release that introduced each RPC newer than 3.0 (etcd-notes.md).
SINCE: dict[str, str] = {
    "/etcdserverpb.Lease/LeaseTimeToLive": "3.1",
    "/etcdserverpb.Lease/LeaseLeases": "3.3",
    "/etcdserverpb.Maintenance/HashKV": "3.3",
    "/etcdserverpb.Maintenance/MoveLeader": "3.3",
    "/etcdserverpb.Cluster/MemberPromote": "3.4",
    "/etcdserverpb.Maintenance/Downgrade": "3.5",
    "/etcdserverpb.Auth/AuthStatus": "3.5",
    "/v3lockpb.Lock/Lock": "3.2",
    "/v3lockpb.Lock/Unlock": "3.2",
    "/v3electionpb.Election/Campaign": "3.2",
    "/v3electionpb.Election/Proclaim": "3.2",
    "/v3electionpb.Election/Leader": "3.2",
    "/v3electionpb.Election/Observe": "3.2",
    "/v3electionpb.Election/Resign": "3.2",
    "/etcdserverpb.KV/RangeStream": "3.7",
}


def unsupported(path: str, message: str) -> UnsupportedError:
    """The error for an RPC the server answered UNIMPLEMENTED."""
    name = path.rsplit("/", 1)[-1]
    since = SINCE.get(path)
    needs = f"it needs etcd {since} or newer" if since else "it is not implemented there"
    return UnsupportedError(
        Status.UNIMPLEMENTED,
        f"the server does not support {name}: {needs} ({message or 'UNIMPLEMENTED'})",
        applied=False,
    )


class WatchCompactedError(EtcdError):
    """Raised from a watch whose next revision has been compacted away."""

    def __init__(self, compact_revision: int, message: str = "") -> None:
        super().__init__(
            message or f"watch revision compacted away (compact revision {compact_revision})",
            applied=False,
        )
        self.compact_revision = compact_revision


class SnapshotError(EtcdError):
    """
    Raised when a snapshot stream is not a complete, intact etcd snapshot: it ended without
    etcd's trailing sha256, or the sha256 does not match the data before it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, applied=False)


class LeaseExpiredError(EtcdError):
    """Raised from a lease's (or lock's) block when the lease was lost while it ran."""

    def __init__(self, lease_id: int, message: str = "") -> None:
        super().__init__(message or f"lease {lease_id:x} expired or was revoked", applied=None)
        self.lease_id = lease_id


_E = "etcdserver: "

#: etcd's exact error strings -> our classes: every string of etcd's
#: ``api/v3rpc/rpctypes/error.go`` (v3.5.1, plus those later releases added, noted), of the
#: auth store and of the v3election service. One row per string, grouped as in error.go.
ERROR_TABLE: dict[str, type[RpcError]] = {
    # requests
    _E + "key is not provided": EmptyKeyError,
    _E + "key not found": KeyNotFoundError,
    _E + "value is provided": ValueProvidedError,
    _E + "lease is provided": LeaseProvidedError,
    _E + "too many operations in txn request": TooManyOpsError,
    _E + "duplicate key given in txn request": DuplicateKeyError,
    _E + "invalid client api version": InvalidClientAPIVersionError,  # 3.6
    _E + "invalid sort option": InvalidSortOptionError,  # 3.6
    _E + "mvcc: required revision has been compacted": CompactedError,
    _E + "mvcc: required revision is a future revision": FutureRevisionError,
    _E + "mvcc: database space exceeded": NoSpaceError,
    # leases
    _E + "requested lease not found": LeaseNotFoundError,
    _E + "lease already exists": LeaseExistsError,
    _E + "too large lease TTL": LeaseTTLTooLargeError,
    # watches
    _E + "watch canceled": WatchCanceledError,
    # members
    _E + "member ID already exist": MemberExistsError,
    _E + "Peer URLs already exists": PeerURLExistsError,
    _E + "re-configuration failed due to not enough started members": MemberNotEnoughStartedError,
    _E + "given member URLs are invalid": MemberBadURLsError,
    _E + "member not found": MemberNotFoundError,
    _E + "can only promote a learner member": MemberNotLearnerError,
    _E + "can only promote a learner member which is in sync with leader": LearnerNotReadyError,
    _E + "too many learner members in cluster": TooManyLearnersError,
    _E + "cluster ID mismatch": ClusterIDMismatchError,  # 3.5.5
    # load
    _E + "request is too large": RequestTooLargeError,
    _E + "too many requests": TooManyRequestsError,
    # auth
    _E + "root user does not exist": RootUserNotExistError,
    _E + "root user does not have root role": RootRoleNotExistError,
    _E + "user name already exists": UserExistsError,
    _E + "user name is empty": UserEmptyError,
    _E + "user name not found": UserNotFoundError,
    _E + "role name already exists": RoleExistsError,
    _E + "role name not found": RoleNotFoundError,
    _E + "role name is empty": RoleEmptyError,
    _E + "authentication failed, invalid user ID or password": AuthenticationError,
    _E + "permission not given": PermissionNotGivenError,
    _E + "permission denied": PermissionDeniedError,
    _E + "role is not granted to the user": RoleNotGrantedError,
    _E + "permission is not granted to the role": PermissionNotGrantedError,
    _E + "authentication is not enabled": AuthNotEnabledError,
    _E + "invalid auth token": InvalidAuthTokenError,
    _E + "invalid auth management": InvalidAuthMgmtError,
    _E + "revision of auth store is old": InvalidAuthTokenError,  # 3.5.7
    "auth: revision in header is old": InvalidAuthTokenError,  # the auth store's own text
    # leadership and availability
    _E + "no leader": NoLeaderError,
    _E + "not leader": MemberNotLeaderError,
    _E + "leader changed": LeaderChangedError,
    _E + "not capable": NotCapableError,
    _E + "server stopped": ServerStoppedError,
    _E + "request timed out": RequestTimedOutError,
    _E + "request timed out, possibly due to previous leader failure": RequestTimedOutError,
    _E + "request timed out, possibly due to connection lost": RequestTimedOutError,
    _E + "request timed out, waiting for the applied index took too long": RequestTimedOutError,
    _E + "unhealthy cluster": UnhealthyClusterError,
    _E + "corrupt cluster": CorruptError,
    _E + "rpc not supported for learner": LearnerUnsupportedError,
    _E + "bad leader transferee": BadLeaderTransfereeError,
    # downgrades
    _E + "cluster version not found during downgrade": ClusterVersionUnavailableError,
    _E + "wrong downgrade target version format": WrongDowngradeVersionFormatError,
    _E + "invalid downgrade target version": InvalidDowngradeTargetVersionError,
    _E + "cluster has a downgrade job in progress": DowngradeInProgressError,
    _E + "no inflight downgrade job": NoInflightDowngradeError,
    # cancellation and deadlines
    _E + "request canceled": RequestCanceledError,
    _E + "context deadline exceeded": DeadlineExceededError,
    # etcd 3.5.1 answers an expired grpc-timeout with code UNKNOWN and Go's plain text.
    "context deadline exceeded": DeadlineExceededError,
    # the v3election service (Go's concurrency package)
    "election: no leader": ElectionNoLeaderError,
    "election: not leader": ElectionNotLeaderError,
}

#: etcd's answers when the deadline we sent it (``grpc-timeout``) expired: the caller's own
#: cancel scope is due then, and fires instead (etcd 3.5.1 answers UNKNOWN with Go's plain
#: text; a proposal that timed out is UNAVAILABLE "request timed out").
DEADLINE_MESSAGES = frozenset(
    {
        _E + "context deadline exceeded",
        "context deadline exceeded",
        _E + "request timed out",
        _E + "request timed out, possibly due to previous leader failure",
        _E + "request timed out, possibly due to connection lost",
        _E + "request timed out, waiting for the applied index took too long",
    }
)


def is_deadline_answer(exc: GrpcError) -> bool:
    """Whether etcd gave up on the deadline it was sent (see :data:`DEADLINE_MESSAGES`)."""
    return exc.status == Status.DEADLINE_EXCEEDED or exc.message in DEADLINE_MESSAGES


#: Unavailability that etcd reports from its interceptor, before the request
#: reaches its handler: the request certainly was not applied.
REJECTED_BEFORE_APPLY = frozenset(
    {
        _E + "rpc not supported for learner",
        _E + "unhealthy cluster",
        # auth checks refuse a request before it is applied
        _E + "invalid auth token",
        _E + "revision of auth store is old",
        "auth: revision in header is old",
        _E + "user name is empty",
    }
)
#: Rejections that may come after the write was applied: etcd applies the put
#: that crosses the quota when its pre-Raft check let it through, and still
#: answers "database space exceeded".
MAYBE_APPLIED = frozenset({_E + "mvcc: database space exceeded"})

#: How our own transport reports an answer over ``max_receive_message``.
_RESPONSE_TOO_LARGE = "received message larger than max"

#: Fallback by gRPC status, for messages not in the table.
STATUS_TABLE: dict[Status, type[RpcError]] = {
    Status.UNAVAILABLE: UnavailableError,
    Status.PERMISSION_DENIED: PermissionDeniedError,
    Status.UNAUTHENTICATED: AuthenticationError,
    Status.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def rpc_error(status: Status, message: str, *, applied: bool | None = None) -> RpcError:
    """The typed error for a gRPC status and etcd's message."""
    cls = ERROR_TABLE.get(message)
    if cls is None:
        if message.startswith("grpc: received message larger than max"):
            cls = RequestTooLargeError
        elif message.startswith(_RESPONSE_TOO_LARGE):
            cls = ResponseTooLargeError
        else:
            cls = STATUS_TABLE.get(status, RpcError)
    return cls(status, message, applied=applied)


def translate(exc: GrpcError | TransportError, *, write: bool) -> EtcdError:
    """
    Turn a ``_grpc`` error into ours.

    :param write: the request may change state; for a write ``.applied`` is
        ``None`` unless the server certainly did not apply it, for a read it is
        ``False`` (a read has nothing to apply)
    """
    if isinstance(exc, GrpcError):
        # A status from the server: a rejected request was not applied, except
        # that after a timeout or unavailability the outcome of a write is unknown.
        unknown = (
            write
            and exc.status
            in (
                Status.UNAVAILABLE,
                Status.DEADLINE_EXCEEDED,
                Status.CANCELLED,
                Status.UNKNOWN,
                Status.INTERNAL,
            )
            and exc.message not in REJECTED_BEFORE_APPLY
        ) or (
            write and (exc.message in MAYBE_APPLIED or exc.message.startswith(_RESPONSE_TOO_LARGE))
        )
        error: EtcdError = rpc_error(exc.status, exc.message, applied=None if unknown else False)
    elif isinstance(exc, UnreachableError):
        error = ConnectionFailedError(exc.message, applied=False, causes=exc.causes)
    elif isinstance(exc, MessageTooLargeError):
        error = RequestTooLargeError(Status.RESOURCE_EXHAUSTED, exc.message, applied=False)
    elif isinstance(exc, ProtocolViolation):
        error = ProtocolViolationError(exc.message, applied=exc.applied if write else False)
    elif isinstance(exc, _GrpcConnectionLost) or exc.applied is not False:
        error = ConnectionLostError(exc.message, applied=exc.applied if write else False)
    else:
        error = ConnectionFailedError(exc.message, applied=False)
    return error


#: gRPC's code names as grpc-go spells them in text ("PermissionDenied"), without the "_"
_STATUS_BY_GO_NAME = {name.replace("_", ""): status for name, status in Status.__members__.items()}
_GO_STATUS_TEXT = "rpc error: code = "


def watch_cancel_status(reason: str) -> tuple[Status, str]:
    """
    The gRPC status and etcd's message in a watch's ``cancel_reason``.

    etcd sends a refused watch's reason as grpc-go's text of a status error
    (``rpc error: code = PermissionDenied desc = etcdserver: permission denied``): that is
    unwrapped; any other text is etcd's message itself, with status ``CANCELLED``.
    """
    if reason.startswith(_GO_STATUS_TEXT):
        code, sep, message = reason[len(_GO_STATUS_TEXT) :].partition(" desc = ")
        if sep and code and all(c.isalnum() or c == "_" for c in code):
            return _STATUS_BY_GO_NAME.get(code.upper(), Status.UNKNOWN), message
    return Status.CANCELLED, reason


def watch_cancel_error(reason: str, compact_revision: int = 0) -> EtcdError:
    """The error for a watch the server cancelled (compacted away, or refused/cancelled)."""
    if compact_revision:
        return WatchCompactedError(compact_revision)
    status, message = watch_cancel_status(reason or _E + "watch canceled")
    return rpc_error(status, message, applied=False)
