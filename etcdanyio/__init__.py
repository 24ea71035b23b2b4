"""etcdanyio: an etcd v3 client for trio and asyncio, with structured concurrency."""

import contextlib

from . import txn as txn
from ._auth import AuthStatus as AuthStatus
from ._auth import Permission as Permission
from ._auth import RolePermission as RolePermission
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
from .errors import CompactedError as CompactedError
from .errors import ConnectionFailedError as ConnectionFailedError
from .errors import ConnectionLostError as ConnectionLostError
from .errors import DeadlineExceededError as DeadlineExceededError
from .errors import DuplicateKeyError as DuplicateKeyError
from .errors import EtcdError as EtcdError
from .errors import FutureRevisionError as FutureRevisionError
from .errors import InvalidAuthTokenError as InvalidAuthTokenError
from .errors import LearnerNotReadyError as LearnerNotReadyError
from .errors import LeaseExpiredError as LeaseExpiredError
from .errors import LeaseNotFoundError as LeaseNotFoundError
from .errors import MemberNotFoundError as MemberNotFoundError
from .errors import NoLeaderError as NoLeaderError
from .errors import NoSpaceError as NoSpaceError
from .errors import PermissionDeniedError as PermissionDeniedError
from .errors import ProtocolViolationError as ProtocolViolationError
from .errors import RequestTooLargeError as RequestTooLargeError
from .errors import RpcError as RpcError
from .errors import SnapshotError as SnapshotError
from .errors import TooManyRequestsError as TooManyRequestsError
from .errors import UnavailableError as UnavailableError
from .errors import UnsupportedError as UnsupportedError
from .errors import WatchCompactedError as WatchCompactedError
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
    "AuthStatus",
    "AuthenticationError",
    "Client",
    "CompactResult",
    "CompactedError",
    "ConnectionFailedError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "DeleteResult",
    "DuplicateKeyError",
    "Election",
    "EtcdError",
    "Event",
    "EventType",
    "Filter",
    "FutureRevisionError",
    "HashKVResult",
    "HealthResult",
    "InvalidAuthTokenError",
    "KeyValue",
    "Leadership",
    "LeadershipLostError",
    "LearnerNotReadyError",
    "Lease",
    "LeaseExpiredError",
    "LeaseGrantResult",
    "LeaseNotFoundError",
    "LeaseTimeToLiveResult",
    "Lock",
    "LockLostError",
    "Member",
    "MemberAddResult",
    "MemberNotFoundError",
    "Mirror",
    "MirrorChanges",
    "MirrorUpdate",
    "NoLeaderError",
    "NoSpaceError",
    "NotLeaderError",
    "Permission",
    "PermissionDeniedError",
    "ProtocolViolationError",
    "PutResult",
    "RangeResult",
    "RequestTooLargeError",
    "ResponseHeader",
    "RolePermission",
    "RpcError",
    "SnapshotError",
    "SortOrder",
    "SortTarget",
    "Status",
    "StatusResult",
    "TooManyRequestsError",
    "TxnResult",
    "UnavailableError",
    "UnsupportedError",
    "VersionResult",
    "Watch",
    "WatchBatch",
    "WatchCompactedError",
    "open_etcd",
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
