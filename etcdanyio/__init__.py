"""etcdanyio: an etcd v3 client for trio and asyncio, with structured concurrency."""

import contextlib

from . import telemetry as telemetry
from . import txn as txn
from ._auth import AuthStatus as AuthStatus
from ._auth import Permission as Permission
from ._auth import RolePermission as RolePermission
from ._election_rpc import ElectionObservation as ElectionObservation
from ._election_rpc import LeaderKey as LeaderKey
from ._grpc import Status as Status
from ._http import VersionResult as VersionResult
from ._mirror import Mirror as Mirror
from ._mirror import MirrorChanges as MirrorChanges
from ._mirror import MirrorUpdate as MirrorUpdate
from ._requests import SortOrder as SortOrder
from ._requests import SortTarget as SortTarget
from ._tls import tls_context as tls_context
from .client import Client as Client
from .client import open_etcd as open_etcd
from .election import Election as Election
from .election import Leadership as Leadership
from .election import LeadershipLostError as LeadershipLostError
from .election import NotLeaderError as NotLeaderError
from .errors import AuthenticationError as AuthenticationError
from .errors import AuthError as AuthError
from .errors import AuthNotEnabledError as AuthNotEnabledError
from .errors import BadLeaderTransfereeError as BadLeaderTransfereeError
from .errors import ClusterError as ClusterError
from .errors import ClusterIDMismatchError as ClusterIDMismatchError
from .errors import ClusterVersionUnavailableError as ClusterVersionUnavailableError
from .errors import CompactedError as CompactedError
from .errors import ConnectionFailedError as ConnectionFailedError
from .errors import ConnectionLostError as ConnectionLostError
from .errors import CorruptError as CorruptError
from .errors import DeadlineExceededError as DeadlineExceededError
from .errors import DowngradeError as DowngradeError
from .errors import DowngradeInProgressError as DowngradeInProgressError
from .errors import DuplicateKeyError as DuplicateKeyError
from .errors import ElectionError as ElectionError
from .errors import ElectionNoLeaderError as ElectionNoLeaderError
from .errors import ElectionNotLeaderError as ElectionNotLeaderError
from .errors import EmptyKeyError as EmptyKeyError
from .errors import EtcdError as EtcdError
from .errors import FutureRevisionError as FutureRevisionError
from .errors import InvalidAuthMgmtError as InvalidAuthMgmtError
from .errors import InvalidAuthTokenError as InvalidAuthTokenError
from .errors import InvalidClientAPIVersionError as InvalidClientAPIVersionError
from .errors import InvalidDowngradeTargetVersionError as InvalidDowngradeTargetVersionError
from .errors import InvalidRequestError as InvalidRequestError
from .errors import InvalidSortOptionError as InvalidSortOptionError
from .errors import KeyNotFoundError as KeyNotFoundError
from .errors import LeaderChangedError as LeaderChangedError
from .errors import LearnerNotReadyError as LearnerNotReadyError
from .errors import LearnerUnsupportedError as LearnerUnsupportedError
from .errors import LeaseError as LeaseError
from .errors import LeaseExistsError as LeaseExistsError
from .errors import LeaseExpiredError as LeaseExpiredError
from .errors import LeaseNotFoundError as LeaseNotFoundError
from .errors import LeaseProvidedError as LeaseProvidedError
from .errors import LeaseTTLTooLargeError as LeaseTTLTooLargeError
from .errors import MemberBadURLsError as MemberBadURLsError
from .errors import MemberError as MemberError
from .errors import MemberExistsError as MemberExistsError
from .errors import MemberNotEnoughStartedError as MemberNotEnoughStartedError
from .errors import MemberNotFoundError as MemberNotFoundError
from .errors import MemberNotLeaderError as MemberNotLeaderError
from .errors import MemberNotLearnerError as MemberNotLearnerError
from .errors import NoInflightDowngradeError as NoInflightDowngradeError
from .errors import NoLeaderError as NoLeaderError
from .errors import NoSpaceError as NoSpaceError
from .errors import NotCapableError as NotCapableError
from .errors import PeerURLExistsError as PeerURLExistsError
from .errors import PermissionDeniedError as PermissionDeniedError
from .errors import PermissionNotGivenError as PermissionNotGivenError
from .errors import PermissionNotGrantedError as PermissionNotGrantedError
from .errors import ProtocolViolationError as ProtocolViolationError
from .errors import RequestCanceledError as RequestCanceledError
from .errors import RequestTimedOutError as RequestTimedOutError
from .errors import RequestTooLargeError as RequestTooLargeError
from .errors import ResponseTooLargeError as ResponseTooLargeError
from .errors import RoleEmptyError as RoleEmptyError
from .errors import RoleExistsError as RoleExistsError
from .errors import RoleNotFoundError as RoleNotFoundError
from .errors import RoleNotGrantedError as RoleNotGrantedError
from .errors import RootRoleNotExistError as RootRoleNotExistError
from .errors import RootUserNotExistError as RootUserNotExistError
from .errors import RpcError as RpcError
from .errors import ServerStoppedError as ServerStoppedError
from .errors import SnapshotError as SnapshotError
from .errors import TooManyLearnersError as TooManyLearnersError
from .errors import TooManyOpsError as TooManyOpsError
from .errors import TooManyRequestsError as TooManyRequestsError
from .errors import UnavailableError as UnavailableError
from .errors import UnhealthyClusterError as UnhealthyClusterError
from .errors import UnsupportedError as UnsupportedError
from .errors import UserEmptyError as UserEmptyError
from .errors import UserExistsError as UserExistsError
from .errors import UserNotFoundError as UserNotFoundError
from .errors import ValueProvidedError as ValueProvidedError
from .errors import WatchCanceledError as WatchCanceledError
from .errors import WatchCompactedError as WatchCompactedError
from .errors import WrongDowngradeVersionFormatError as WrongDowngradeVersionFormatError
from .lease import Lease as Lease
from .lease import LeaseGrantResult as LeaseGrantResult
from .lease import LeaseTimeToLiveResult as LeaseTimeToLiveResult
from .lock import Lock as Lock
from .lock import LockLostError as LockLostError
from .types import Alarm as Alarm
from .types import AlarmType as AlarmType
from .types import CompactResult as CompactResult
from .types import DeleteResult as DeleteResult
from .types import HashKVResult as HashKVResult
from .types import HealthResult as HealthResult
from .types import KeyValue as KeyValue
from .types import Member as Member
from .types import MemberAddResult as MemberAddResult
from .types import PutResult as PutResult
from .types import RangeResult as RangeResult
from .types import ResponseHeader as ResponseHeader
from .types import StatusResult as StatusResult
from .types import TxnResult as TxnResult
from .watch import Event as Event
from .watch import EventType as EventType
from .watch import Filter as Filter
from .watch import Watch as Watch
from .watch import WatchBatch as WatchBatch

__version__ = "0.1.0.dev0"

__all__ = [
    "Alarm",
    "AlarmType",
    "AuthError",
    "AuthNotEnabledError",
    "AuthStatus",
    "AuthenticationError",
    "BadLeaderTransfereeError",
    "Client",
    "ClusterError",
    "ClusterIDMismatchError",
    "ClusterVersionUnavailableError",
    "CompactResult",
    "CompactedError",
    "ConnectionFailedError",
    "ConnectionLostError",
    "CorruptError",
    "DeadlineExceededError",
    "DeleteResult",
    "DowngradeError",
    "DowngradeInProgressError",
    "DuplicateKeyError",
    "Election",
    "ElectionError",
    "ElectionNoLeaderError",
    "ElectionNotLeaderError",
    "ElectionObservation",
    "EmptyKeyError",
    "EtcdError",
    "Event",
    "EventType",
    "Filter",
    "FutureRevisionError",
    "HashKVResult",
    "HealthResult",
    "InvalidAuthMgmtError",
    "InvalidAuthTokenError",
    "InvalidClientAPIVersionError",
    "InvalidDowngradeTargetVersionError",
    "InvalidRequestError",
    "InvalidSortOptionError",
    "KeyNotFoundError",
    "KeyValue",
    "LeaderChangedError",
    "LeaderKey",
    "Leadership",
    "LeadershipLostError",
    "LearnerNotReadyError",
    "LearnerUnsupportedError",
    "Lease",
    "LeaseError",
    "LeaseExistsError",
    "LeaseExpiredError",
    "LeaseGrantResult",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "LeaseTimeToLiveResult",
    "Lock",
    "LockLostError",
    "Member",
    "MemberAddResult",
    "MemberBadURLsError",
    "MemberError",
    "MemberExistsError",
    "MemberNotEnoughStartedError",
    "MemberNotFoundError",
    "MemberNotLeaderError",
    "MemberNotLearnerError",
    "Mirror",
    "MirrorChanges",
    "MirrorUpdate",
    "NoInflightDowngradeError",
    "NoLeaderError",
    "NoSpaceError",
    "NotCapableError",
    "NotLeaderError",
    "PeerURLExistsError",
    "Permission",
    "PermissionDeniedError",
    "PermissionNotGivenError",
    "PermissionNotGrantedError",
    "ProtocolViolationError",
    "PutResult",
    "RangeResult",
    "RequestCanceledError",
    "RequestTimedOutError",
    "RequestTooLargeError",
    "ResponseHeader",
    "ResponseTooLargeError",
    "RoleEmptyError",
    "RoleExistsError",
    "RoleNotFoundError",
    "RoleNotGrantedError",
    "RolePermission",
    "RootRoleNotExistError",
    "RootUserNotExistError",
    "RpcError",
    "ServerStoppedError",
    "SnapshotError",
    "SortOrder",
    "SortTarget",
    "Status",
    "StatusResult",
    "TooManyLearnersError",
    "TooManyOpsError",
    "TooManyRequestsError",
    "TxnResult",
    "UnavailableError",
    "UnhealthyClusterError",
    "UnsupportedError",
    "UserEmptyError",
    "UserExistsError",
    "UserNotFoundError",
    "ValueProvidedError",
    "VersionResult",
    "Watch",
    "WatchBatch",
    "WatchCanceledError",
    "WatchCompactedError",
    "WrongDowngradeVersionFormatError",
    "open_etcd",
    "telemetry",
    "tls_context",
    "txn",
]


def _fixup_module_metadata() -> None:
    # Tracebacks and reprs say etcdanyio.LeaseExpiredError, not etcdanyio.errors.…
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("etcdanyio.") and hasattr(obj, "__qualname__"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_fixup_module_metadata()
del _fixup_module_metadata
