"""The public enums print their names on every Python (3.11 changed IntEnum's str())."""

from __future__ import annotations

import enum

import pytest

import etcdanyio

pytestmark = pytest.mark.unit

PUBLIC_ENUMS = [
    obj
    for name in etcdanyio.__all__
    if isinstance(obj := getattr(etcdanyio, name), type) and issubclass(obj, enum.Enum)
]


def test_every_public_enum_is_covered() -> None:
    assert {e.__name__ for e in PUBLIC_ENUMS} >= {"EventType", "Status", "SortOrder", "AlarmType"}


@pytest.mark.parametrize("cls", PUBLIC_ENUMS, ids=lambda c: c.__name__)
def test_str_and_format_give_the_name_and_the_number_stays(cls: type[enum.IntEnum]) -> None:
    for member in cls:
        assert str(member) == member.name
        assert f"{member}" == member.name
        assert f"{member:d}" == str(member.value)
        assert member == member.value
        assert repr(member) == f"<{cls.__name__}.{member.name}: {member.value}>"
