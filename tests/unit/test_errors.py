"""
The error table and the translation of gRPC-layer errors (``etcdanyio.errors``).

The expected strings below are transcribed independently from etcd's
``api/v3rpc/rpctypes/error.go`` (with their gRPC codes), not copied from ``ERROR_TABLE``, so a
typo in the table fails here.
"""

from __future__ import annotations

import inspect

import pytest

import etcdanyio
from etcdanyio import _error_table, errors
from etcdanyio._error_table import rpc_error, translate
from etcdanyio._grpc import (
    ConnectionLostError,
    GrpcError,
    MessageTooLargeError,
    ProtocolViolation,
    StreamRefusedError,
    TransportError,
    UnreachableError,
)
from etcdanyio.errors import (
    AuthenticationError,
    CompactedError,
    ConnectionFailedError,
    DeadlineExceededError,
    DuplicateKeyError,
    EtcdError,
    FutureRevisionError,
    InvalidAuthTokenError,
    LearnerNotReadyError,
    LeaseExpiredError,
    LeaseNotFoundError,
    MemberNotFoundError,
    NoLeaderError,
    NoSpaceError,
    PermissionDeniedError,
    ProtocolViolationError,
    RequestTooLargeError,
    RpcError,
    Status,
    TooManyRequestsError,
    UnavailableError,
    WatchCompactedError,
)

pytestmark = pytest.mark.unit

# Every string of etcd's api/v3rpc/rpctypes/error.go at v3.5.1 (the etcd of proto/), those
# later releases added (noted), the auth store's own and the v3election service's:
# (gRPC status etcd sends it with, exact message, the class it must become).
_S = Status
ETCD_ERRORS: list[tuple[Status, str, type[RpcError]]] = [
    (_S.INVALID_ARGUMENT, "etcdserver: key is not provided", errors.EmptyKeyError),
    (_S.INVALID_ARGUMENT, "etcdserver: key not found", errors.KeyNotFoundError),
    (_S.INVALID_ARGUMENT, "etcdserver: value is provided", errors.ValueProvidedError),
    (_S.INVALID_ARGUMENT, "etcdserver: lease is provided", errors.LeaseProvidedError),
    (_S.INVALID_ARGUMENT, "etcdserver: too many operations in txn request", errors.TooManyOpsError),
    (_S.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request", DuplicateKeyError),
    (
        _S.INVALID_ARGUMENT,
        "etcdserver: invalid client api version",
        errors.InvalidClientAPIVersionError,
    ),
    (_S.INVALID_ARGUMENT, "etcdserver: invalid sort option", errors.InvalidSortOptionError),
    (_S.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted", CompactedError),
    (
        _S.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
        FutureRevisionError,
    ),
    (_S.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded", NoSpaceError),
    (_S.NOT_FOUND, "etcdserver: requested lease not found", LeaseNotFoundError),
    (_S.FAILED_PRECONDITION, "etcdserver: lease already exists", errors.LeaseExistsError),
    (_S.OUT_OF_RANGE, "etcdserver: too large lease TTL", errors.LeaseTTLTooLargeError),
    (_S.CANCELLED, "etcdserver: watch canceled", errors.WatchCanceledError),
    (_S.FAILED_PRECONDITION, "etcdserver: member ID already exist", errors.MemberExistsError),
    (_S.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists", errors.PeerURLExistsError),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members",
        errors.MemberNotEnoughStartedError,
    ),
    (_S.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid", errors.MemberBadURLsError),
    (_S.NOT_FOUND, "etcdserver: member not found", MemberNotFoundError),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member",
        errors.MemberNotLearnerError,
    ),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
        LearnerNotReadyError,
    ),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: too many learner members in cluster",
        errors.TooManyLearnersError,
    ),
    (_S.FAILED_PRECONDITION, "etcdserver: cluster ID mismatch", errors.ClusterIDMismatchError),
    (_S.INVALID_ARGUMENT, "etcdserver: request is too large", RequestTooLargeError),
    (_S.RESOURCE_EXHAUSTED, "etcdserver: too many requests", TooManyRequestsError),
    (_S.FAILED_PRECONDITION, "etcdserver: root user does not exist", errors.RootUserNotExistError),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: root user does not have root role",
        errors.RootRoleNotExistError,
    ),
    (_S.FAILED_PRECONDITION, "etcdserver: user name already exists", errors.UserExistsError),
    (_S.INVALID_ARGUMENT, "etcdserver: user name is empty", errors.UserEmptyError),
    (_S.FAILED_PRECONDITION, "etcdserver: user name not found", errors.UserNotFoundError),
    (_S.FAILED_PRECONDITION, "etcdserver: role name already exists", errors.RoleExistsError),
    (_S.FAILED_PRECONDITION, "etcdserver: role name not found", errors.RoleNotFoundError),
    (_S.INVALID_ARGUMENT, "etcdserver: role name is empty", errors.RoleEmptyError),
    (
        _S.INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
        AuthenticationError,
    ),
    (_S.INVALID_ARGUMENT, "etcdserver: permission not given", errors.PermissionNotGivenError),
    (_S.PERMISSION_DENIED, "etcdserver: permission denied", PermissionDeniedError),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: role is not granted to the user",
        errors.RoleNotGrantedError,
    ),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: permission is not granted to the role",
        errors.PermissionNotGrantedError,
    ),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: authentication is not enabled",
        errors.AuthNotEnabledError,
    ),
    (_S.UNAUTHENTICATED, "etcdserver: invalid auth token", InvalidAuthTokenError),
    (_S.INVALID_ARGUMENT, "etcdserver: invalid auth management", errors.InvalidAuthMgmtError),
    (_S.INVALID_ARGUMENT, "etcdserver: revision of auth store is old", InvalidAuthTokenError),
    (_S.UNKNOWN, "auth: revision in header is old", InvalidAuthTokenError),
    (_S.UNAVAILABLE, "etcdserver: no leader", NoLeaderError),
    (_S.FAILED_PRECONDITION, "etcdserver: not leader", errors.MemberNotLeaderError),
    (_S.UNAVAILABLE, "etcdserver: leader changed", errors.LeaderChangedError),
    (_S.UNAVAILABLE, "etcdserver: not capable", errors.NotCapableError),
    (_S.UNAVAILABLE, "etcdserver: server stopped", errors.ServerStoppedError),
    (_S.UNAVAILABLE, "etcdserver: request timed out", errors.RequestTimedOutError),
    (
        _S.UNAVAILABLE,
        "etcdserver: request timed out, possibly due to previous leader failure",
        errors.RequestTimedOutError,
    ),
    (
        _S.UNAVAILABLE,
        "etcdserver: request timed out, possibly due to connection lost",
        errors.RequestTimedOutError,
    ),
    (
        _S.UNAVAILABLE,
        "etcdserver: request timed out, waiting for the applied index took too long",
        errors.RequestTimedOutError,
    ),
    (_S.UNAVAILABLE, "etcdserver: unhealthy cluster", errors.UnhealthyClusterError),
    (_S.DATA_LOSS, "etcdserver: corrupt cluster", errors.CorruptError),
    (_S.UNAVAILABLE, "etcdserver: rpc not supported for learner", errors.LearnerUnsupportedError),
    (_S.FAILED_PRECONDITION, "etcdserver: bad leader transferee", errors.BadLeaderTransfereeError),
    (
        _S.UNAVAILABLE,
        "etcdserver: cluster version not found during downgrade",
        errors.ClusterVersionUnavailableError,
    ),
    (
        _S.INVALID_ARGUMENT,
        "etcdserver: wrong downgrade target version format",
        errors.WrongDowngradeVersionFormatError,
    ),
    (
        _S.INVALID_ARGUMENT,
        "etcdserver: invalid downgrade target version",
        errors.InvalidDowngradeTargetVersionError,
    ),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: cluster has a downgrade job in progress",
        errors.DowngradeInProgressError,
    ),
    (
        _S.FAILED_PRECONDITION,
        "etcdserver: no inflight downgrade job",
        errors.NoInflightDowngradeError,
    ),
    (_S.CANCELLED, "etcdserver: request canceled", errors.RequestCanceledError),
    (_S.DEADLINE_EXCEEDED, "etcdserver: context deadline exceeded", DeadlineExceededError),
    (_S.UNKNOWN, "election: no leader", errors.ElectionNoLeaderError),
    (_S.UNKNOWN, "election: not leader", errors.ElectionNotLeaderError),
]

# The families users catch.
FAMILIES: dict[type[RpcError], list[str]] = {
    errors.InvalidRequestError: ["key is not provided", "too many operations in txn request"],
    errors.LeaseError: ["requested lease not found", "lease already exists", "too large lease TTL"],
    errors.MemberError: [
        "member ID already exist",
        "Peer URLs already exists",
        "member not found",
        "can only promote a learner member",
        "too many learner members in cluster",
    ],
    errors.ClusterError: ["not leader", "corrupt cluster", "no inflight downgrade job"],
    errors.AuthError: [
        "authentication failed, invalid user ID or password",
        "permission denied",
        "user name already exists",
        "role name not found",
        "authentication is not enabled",
        "revision of auth store is old",
    ],
    UnavailableError: ["no leader", "leader changed", "request timed out", "unhealthy cluster"],
}


@pytest.mark.parametrize("family", list(FAMILIES), ids=lambda c: c.__name__)
def test_families(family: type[RpcError]) -> None:
    for message in FAMILIES[family]:
        error = rpc_error(Status.UNKNOWN, "etcdserver: " + message)
        assert isinstance(error, family), message
        assert type(error) is not family  # each string has its own class under the family


def test_every_etcd_string_is_typed() -> None:
    assert sorted(m for _, m, _ in ETCD_ERRORS) == sorted(
        m for m in _error_table.ERROR_TABLE if m != "context deadline exceeded"
    )
    for _, message, _ in ETCD_ERRORS:
        assert type(rpc_error(Status.UNKNOWN, message)) is not RpcError, message


def _table_ids() -> list[str]:
    return [message.removeprefix("etcdserver: ") for message in _error_table.ERROR_TABLE]


@pytest.mark.parametrize(
    ("message", "cls"), list(_error_table.ERROR_TABLE.items()), ids=_table_ids()
)
@pytest.mark.parametrize("status", [Status.UNKNOWN, Status.INVALID_ARGUMENT, Status.UNAVAILABLE])
def test_every_table_entry_maps_its_exact_string(
    message: str, cls: type[RpcError], status: Status
) -> None:
    # The string decides, whatever the status (codes changed between etcd versions).
    error = rpc_error(status, message)
    assert type(error) is cls
    assert error.message == message
    assert error.status is status
    assert error.applied is None  # not said: unknown


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    ETCD_ERRORS,
    ids=[m.removeprefix("etcdserver: ") for _, m, _ in ETCD_ERRORS],
)
def test_etcd_strings_map_to_the_documented_classes(
    status: Status, message: str, cls: type[RpcError]
) -> None:
    assert _error_table.ERROR_TABLE.get(message) is cls
    error = rpc_error(status, message, applied=False)
    assert type(error) is cls
    assert (error.status, error.message, error.applied) == (status, message, False)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("etcdserver: requested lease not found ", id="trailing-space"),
        pytest.param("Etcdserver: requested lease not found", id="case"),
        pytest.param("lease: etcdserver: requested lease not found", id="embedded"),
        pytest.param("etcdserver: requested lease", id="truncated"),
        pytest.param("", id="empty"),
    ],
)
def test_strings_are_never_matched_loosely(message: str) -> None:
    error = rpc_error(Status.NOT_FOUND, message)
    assert type(error) is RpcError
    assert error.message == message


STATUS_FALLBACK: dict[Status, type[RpcError]] = {
    Status.UNAVAILABLE: UnavailableError,
    Status.PERMISSION_DENIED: PermissionDeniedError,
    Status.UNAUTHENTICATED: AuthenticationError,
    Status.DEADLINE_EXCEEDED: DeadlineExceededError,
}


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.OK], ids=lambda s: s.name)
def test_unknown_strings_fall_back_by_status(status: Status) -> None:
    error = rpc_error(status, "something etcd never said")
    assert type(error) is STATUS_FALLBACK.get(status, RpcError)
    assert error.status is status
    assert error.message == "something etcd never said"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (Status.RESOURCE_EXHAUSTED, "grpc: received message larger than max (2097161 vs. 2097152)"),
        (Status.RESOURCE_EXHAUSTED, "grpc: received message larger than max (5 vs. 4)"),
        (Status.UNKNOWN, "grpc: received message larger than max (9 vs. 8)"),
    ],
)
def test_grpc_size_limit_is_request_too_large(status: Status, message: str) -> None:
    error = rpc_error(status, message)
    assert type(error) is RequestTooLargeError
    assert error.message == message


def test_deadline_exceeded_is_a_timeout_error() -> None:
    assert issubclass(DeadlineExceededError, TimeoutError)
    assert issubclass(DeadlineExceededError, RpcError)
    error = rpc_error(Status.DEADLINE_EXCEEDED, "context deadline exceeded")
    with pytest.raises(TimeoutError):
        raise error


def test_raw_context_deadline_from_etcd_is_a_timeout() -> None:
    error = rpc_error(Status.UNKNOWN, "context deadline exceeded")
    assert type(error) is DeadlineExceededError
    assert isinstance(error, TimeoutError)


# -- translate ----------------------------------------------------------------------------------

UNKNOWN_OUTCOME = {
    Status.UNAVAILABLE,
    Status.DEADLINE_EXCEEDED,
    Status.CANCELLED,
    Status.UNKNOWN,
    Status.INTERNAL,
}


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.OK], ids=lambda s: s.name)
def test_translate_status_applied(status: Status) -> None:
    """A rejected request was not applied; after unavailability or a timeout a write is unknown."""
    message = "etcdserver: something"
    read = translate(GrpcError(status, message), write=False)
    write = translate(GrpcError(status, message), write=True)
    for error in (read, write):
        assert isinstance(error, RpcError)
        assert error.status is status
        assert error.message == message
    assert read.applied is False
    assert write.applied is (None if status in UNKNOWN_OUTCOME else False)


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (
            Status.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted",
            CompactedError,
        ),
        (Status.NOT_FOUND, "etcdserver: requested lease not found", LeaseNotFoundError),
        (
            Status.INVALID_ARGUMENT,
            "etcdserver: duplicate key given in txn request",
            DuplicateKeyError,
        ),
        (Status.RESOURCE_EXHAUSTED, "etcdserver: too many requests", TooManyRequestsError),
        (Status.INVALID_ARGUMENT, "etcdserver: request is too large", RequestTooLargeError),
        (Status.PERMISSION_DENIED, "etcdserver: permission denied", PermissionDeniedError),
    ],
    ids=lambda v: v.removeprefix("etcdserver: ") if isinstance(v, str) else "",
)
def test_translate_rejections_are_typed_and_not_applied(
    status: Status, message: str, cls: type[RpcError]
) -> None:
    for write in (False, True):
        error = translate(GrpcError(status, message), write=write)
        assert type(error) is cls
        assert error.message == message
        assert error.applied is False


@pytest.mark.parametrize(
    "message",
    [
        "etcdserver: no leader",
        "etcdserver: leader changed",
        "etcdserver: request timed out",
        "etcdserver: server stopped",
    ],
)
def test_translate_unavailable_write_is_unknown(message: str) -> None:
    error = translate(GrpcError(Status.UNAVAILABLE, message), write=True)
    assert isinstance(error, UnavailableError)
    assert error.applied is None
    assert translate(GrpcError(Status.UNAVAILABLE, message), write=False).applied is False


def test_translate_learner_rejection_is_definite() -> None:
    exc = GrpcError(Status.UNAVAILABLE, "etcdserver: rpc not supported for learner")
    assert translate(exc, write=True).applied is False


def test_translate_deadline_exceeded_write_is_unknown_timeout() -> None:
    error = translate(
        GrpcError(Status.DEADLINE_EXCEEDED, "etcdserver: context deadline exceeded"), write=True
    )
    assert type(error) is DeadlineExceededError
    assert isinstance(error, TimeoutError)
    assert error.applied is None


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_translate_unreachable_is_never_sent(write: bool) -> None:
    cause = ConnectionRefusedError(111, "refused")
    error = translate(UnreachableError("could not connect to any of x", [cause]), write=write)
    assert type(error) is ConnectionFailedError
    assert error.applied is False
    assert error.message == "could not connect to any of x"
    assert error.causes == [cause]


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_translate_stream_refused_is_never_sent(write: bool) -> None:
    error = translate(StreamRefusedError("GOAWAY below the stream"), write=write)
    assert isinstance(error, ConnectionFailedError)
    assert error.applied is False
    assert error.message == "GOAWAY below the stream"


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_translate_message_too_large(write: bool) -> None:
    error = translate(MessageTooLargeError("message of 9 bytes over the limit 8"), write=write)
    assert type(error) is RequestTooLargeError
    assert error.status is Status.RESOURCE_EXHAUSTED
    assert error.applied is False
    assert error.message == "message of 9 bytes over the limit 8"


def test_translate_connection_lost_after_sending() -> None:
    lost = ConnectionLostError("connection reset", applied=None)
    write = translate(lost, write=True)
    assert type(write) is errors.ConnectionLostError
    assert isinstance(write, ConnectionFailedError)
    assert write.applied is None  # sent, then lost: unknown outcome
    assert write.message == "connection reset"
    assert translate(lost, write=False).applied is False  # a read applies nothing


def test_translate_connection_lost_before_sending() -> None:
    lost = ConnectionLostError("connection closed before the request", applied=False)
    error = translate(lost, write=True)
    assert isinstance(error, ConnectionFailedError)
    assert error.applied is False


def test_translate_unclassified_transport_loss_is_unknown_for_writes() -> None:
    error = translate(TransportError("stream reset by peer", applied=None), write=True)
    assert isinstance(error, ConnectionFailedError)
    assert error.applied is None
    assert translate(TransportError("x", applied=False), write=True).applied is False


@pytest.mark.parametrize(
    ("write", "applied"), [(False, False), (True, None)], ids=["read", "write"]
)
def test_translate_protocol_violation(write: bool, applied: bool | None) -> None:
    error = translate(ProtocolViolation("bad frame", applied=None), write=write)
    assert type(error) is ProtocolViolationError
    assert error.applied is applied
    assert error.message == "bad frame"


# -- the classes --------------------------------------------------------------------------------


def _error_classes() -> list[type[EtcdError]]:
    return [
        obj for obj in vars(errors).values() if inspect.isclass(obj) and issubclass(obj, EtcdError)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_is_exported(cls: type[EtcdError]) -> None:
    assert getattr(etcdanyio, cls.__name__) is cls
    assert cls.__name__ in etcdanyio.__all__


def test_the_hierarchy() -> None:
    for cls in (
        CompactedError,
        FutureRevisionError,
        LeaseNotFoundError,
        NoLeaderError,
        TooManyRequestsError,
        RequestTooLargeError,
        DuplicateKeyError,
        PermissionDeniedError,
        AuthenticationError,
        NoSpaceError,
        UnavailableError,
        DeadlineExceededError,
    ):
        assert issubclass(cls, RpcError), cls
    for base in (
        ConnectionFailedError,
        ProtocolViolationError,
        RpcError,
        WatchCompactedError,
        LeaseExpiredError,
    ):
        assert issubclass(base, EtcdError), base
    assert issubclass(NoLeaderError, UnavailableError)
    assert issubclass(InvalidAuthTokenError, AuthenticationError)
    assert issubclass(errors.ConnectionLostError, ConnectionFailedError)
    assert not issubclass(EtcdError, (TypeError, ValueError))
    assert etcdanyio.Status is Status


def test_rpc_error_str_and_repr_keep_the_message() -> None:
    message = "etcdserver: mvcc: required revision has been compacted"
    error = rpc_error(Status.OUT_OF_RANGE, message)
    assert message in str(error)
    assert str(error) == f"{message} (OUT_OF_RANGE)"
    assert repr(error) == f"CompactedError(OUT_OF_RANGE, {message!r})"
    assert error.args == (message,)
    assert isinstance(error, CompactedError)
    assert error.compact_revision == 0  # etcd's text does not say it
    assert str(rpc_error(Status.UNAVAILABLE, "")) == "UNAVAILABLE"


def test_plain_errors_str_is_the_message() -> None:
    assert str(EtcdError("boom")) == "boom"
    assert EtcdError("boom").message == "boom"
    assert EtcdError("boom").applied is None
    error = ConnectionFailedError("no endpoint", causes=[OSError("x")])
    assert (str(error), error.applied, len(error.causes)) == ("no endpoint", False, 1)
    assert "boom" in repr(EtcdError("boom"))


def test_watch_compacted_and_lease_expired() -> None:
    watch = WatchCompactedError(42)
    assert watch.compact_revision == 42
    assert "42" in str(watch)
    assert watch.applied is False
    assert WatchCompactedError(7, "custom").message == "custom"
    lease = LeaseExpiredError(0x1F)
    assert lease.lease_id == 0x1F
    assert "1f" in str(lease)
    assert lease.applied is None
    assert LeaseExpiredError(1, "gone").message == "gone"


def test_translate_nospace_on_a_write_may_have_been_applied() -> None:
    # etcd applies the put that crosses the quota when its pre-Raft check let it
    # through, and still answers "database space exceeded".
    exc = GrpcError(Status.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
    assert translate(exc, write=True).applied is None
    assert translate(exc, write=False).applied is False


def test_translate_unhealthy_cluster_is_a_definite_rejection() -> None:
    exc = GrpcError(Status.UNAVAILABLE, "etcdserver: unhealthy cluster")
    assert translate(exc, write=True).applied is False


def test_unsupported_names_the_version_needed() -> None:
    from etcdanyio._error_table import unsupported
    from etcdanyio.errors import UnsupportedError

    error = unsupported("/etcdserverpb.Maintenance/Downgrade", "unknown service")
    assert isinstance(error, UnsupportedError)
    assert error.applied is False
    assert "Downgrade" in error.message
    assert "needs etcd 3.5 or newer" in error.message
    assert "not implemented" in unsupported("/x.Y/New", "").message
