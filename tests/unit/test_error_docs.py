"""docs/errors.md says what ``etcdanyio.errors`` does: its table is ERROR_TABLE, row for row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etcdanyio import _error_table, errors

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
_ROW = re.compile(r"^\| `([^`]+)` \| `(\w+)` \|$")


def test_the_table_is_the_error_table() -> None:
    rows = [m.groups() for m in map(_ROW.match, DOC.read_text().splitlines()) if m]
    assert rows == [(message, cls.__name__) for message, cls in _error_table.ERROR_TABLE.items()]


def test_every_error_class_is_named() -> None:
    text = DOC.read_text()
    missing = [n for n in errors.__all__ if n != "Status" and n not in text]
    assert missing == []
