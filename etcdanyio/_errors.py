"""The exception classes of :mod:`etcdanyio.errors` (the public module re-exports them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._grpc import Status


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
