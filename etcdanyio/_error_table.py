"""
The one error table: etcd's exact error strings to our classes, the messages that call for a
re-authentication or mean a deadline, and the translation of ``_grpc`` errors into ours.
"""

from __future__ import annotations

import anyio

from ._errors import (
    AuthenticationError,
    AuthNotEnabledError,
    BadLeaderTransfereeError,
    ClusterIDMismatchError,
    ClusterVersionUnavailableError,
    CompactedError,
    ConnectionFailedError,
    ConnectionLostError,
    CorruptError,
    DeadlineExceededError,
    DowngradeInProgressError,
    DuplicateKeyError,
    ElectionNoLeaderError,
    ElectionNotLeaderError,
    EmptyKeyError,
    EtcdError,
    FutureRevisionError,
    InvalidAuthMgmtError,
    InvalidAuthTokenError,
    InvalidClientAPIVersionError,
    InvalidDowngradeTargetVersionError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaderChangedError,
    LearnerNotReadyError,
    LearnerUnsupportedError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseProvidedError,
    LeaseTTLTooLargeError,
    MemberBadURLsError,
    MemberExistsError,
    MemberNotEnoughStartedError,
    MemberNotFoundError,
    MemberNotLeaderError,
    MemberNotLearnerError,
    NoInflightDowngradeError,
    NoLeaderError,
    NoSpaceError,
    NotCapableError,
    PeerURLExistsError,
    PermissionDeniedError,
    PermissionNotGivenError,
    PermissionNotGrantedError,
    ProtocolViolationError,
    RequestCanceledError,
    RequestTimedOutError,
    RequestTooLargeError,
    ResponseTooLargeError,
    RoleEmptyError,
    RoleExistsError,
    RoleNotFoundError,
    RoleNotGrantedError,
    RootRoleNotExistError,
    RootUserNotExistError,
    RpcError,
    ServerStoppedError,
    TooManyLearnersError,
    TooManyOpsError,
    TooManyRequestsError,
    UnavailableError,
    UnhealthyClusterError,
    UnsupportedError,
    UserEmptyError,
    UserExistsError,
    UserNotFoundError,
    ValueProvidedError,
    WatchCanceledError,
    WatchCompactedError,
    WrongDowngradeVersionFormatError,
)
from ._grpc import ConnectionLostError as _GrpcConnectionLost
from ._grpc import (
    GrpcError,
    MessageTooLargeError,
    ProtocolViolation,
    Status,
    TransportError,
    UnreachableError,
)

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


#: etcd's messages that mean "authenticate again, then retry": the token expired or the auth
#: store changed under it; or no token was sent although credentials are held (a token the
#: server forgot, e.g. after a restart). The server refused the request before applying it.
REAUTHENTICATE = frozenset(
    {
        _E + "invalid auth token",
        _E + "revision of auth store is old",
        "auth: revision in header is old",
        _E + "user name is empty",
    }
)


def needs_reauthentication(message: str) -> bool:
    """Whether etcd's ``message`` asks for a new token (see :data:`REAUTHENTICATE`)."""
    return message in REAUTHENTICATE


async def let_deadline_fire() -> None:
    """
    etcd gave up on the deadline we sent it (DEADLINE_EXCEEDED, or UNAVAILABLE "request timed
    out" for a proposal): if that deadline was a cancel scope's (the caller's own or the
    client's default timeout), let the scope fire (it is due now), so that the caller sees its
    ``TimeoutError`` or ``move_on_after``, not an error of ours.
    """
    if anyio.current_effective_deadline() <= anyio.current_time():
        await anyio.sleep_forever()


#: Unavailability that etcd reports from its interceptor, before the request
#: reaches its handler: the request certainly was not applied.
REJECTED_BEFORE_APPLY = (
    frozenset({_E + "rpc not supported for learner", _E + "unhealthy cluster"})
    | REAUTHENTICATE  # auth checks refuse a request before it is applied
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


def lease_not_found() -> RpcError:
    """etcd's "requested lease not found", for a lease found gone another way (TTL 0 or -1)."""
    return rpc_error(Status.NOT_FOUND, _E + "requested lease not found", applied=False)


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
