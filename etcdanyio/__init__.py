"""etcdanyio: an etcd v3 client for trio and asyncio, with structured concurrency."""

import typing as _typing

if _typing.TYPE_CHECKING:  # type checkers see every export; at run time they load on first use
    from ._api import *  # noqa: F403

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


_loading = False


if not _typing.TYPE_CHECKING:  # hidden from type checkers: a typo must stay an error there

    def __getattr__(name: str) -> _typing.Any:
        # The first public name read imports the whole API (etcdanyio._api) in one go: the
        # client stack costs ~100 ms to import, which `import etcdanyio.testing` (the pytest
        # plugin, loaded in every test session) and tools reading __version__ need not pay.
        global _loading
        import contextlib

        if name in ("telemetry", "txn"):  # submodules, which modules of the API import
            import importlib

            return importlib.import_module(f".{name}", __name__)
        if name not in __all__ or _loading:
            # _loading: a module of the API asked for a submodule (`from . import txn`) while
            # _api is being imported; the import system then imports the submodule itself.
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        _loading = True
        try:
            from . import _api
        finally:
            _loading = False
        for export in __all__:
            obj = getattr(_api, export)
            globals()[export] = obj  # later reads do not come back here
            module = getattr(obj, "__module__", None)
            if (
                isinstance(module, str)
                and module.startswith("etcdanyio.")
                and hasattr(obj, "__qualname__")
            ):
                with contextlib.suppress(AttributeError, TypeError):
                    obj.__module__ = __name__  # tracebacks say etcdanyio.LeaseExpiredError
        return globals()[name]

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
