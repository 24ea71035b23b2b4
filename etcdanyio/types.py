"""Result types: what the client's calls return (frozen dataclasses)."""

from ._types import (
    Alarm,
    AlarmType,
    CompactResult,
    DeleteResult,
    HashKVResult,
    HealthResult,
    KeyValue,
    Member,
    MemberAddResult,
    PutResult,
    RangeResult,
    ResponseHeader,
    StatusResult,
    TxnResult,
)

__all__ = [
    "Alarm",
    "AlarmType",
    "CompactResult",
    "DeleteResult",
    "HashKVResult",
    "HealthResult",
    "KeyValue",
    "Member",
    "MemberAddResult",
    "PutResult",
    "RangeResult",
    "ResponseHeader",
    "StatusResult",
    "TxnResult",
]
