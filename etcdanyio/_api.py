"""
The public API of :mod:`etcdanyio`, imported together on first use.

``import etcdanyio`` alone imports nothing of the client: the package's ``__getattr__`` imports
this module the first time a public name is read, and every public object's ``__module__``
then says ``etcdanyio`` (tracebacks and reprs show ``etcdanyio.LeaseExpiredError``, not
``etcdanyio.errors.LeaseExpiredError``). Add an export here and to ``__all__`` in
``__init__.py``; ``tests/unit/test_exports.py`` checks that the two agree.
"""

from . import txn as txn
from ._auth import AuthStatus as AuthStatus
from ._auth import Permission as Permission
from ._auth import RolePermission as RolePermission
from ._grpc import Status as Status
from ._http import VersionResult as VersionResult
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
