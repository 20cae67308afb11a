"""Spreadsheet-safe CSV: a cell a spreadsheet would run as a formula is written as text.

Complaint text, addresses and agents' notes come from the public. Opened in Excel or
LibreOffice, a cell such as ``=HYPERLINK("http://evil","x")`` or ``+cmd|' /C calc'!A0`` is
a formula, not text. As OWASP advises ("CSV Injection"), a text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote, which
spreadsheets read as "this is text". Numbers stay numbers: int and float values are left
alone, and so are the columns named as numeric when they hold a plain number (a longitude
of ``-71.06`` must not become text); anything else in them is neutralised like text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: First characters that make a spreadsheet treat a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: A plain decimal number, as a numeric column holds it ("-71.0589", "12", "1e-3").
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any, *, numeric: bool = False) -> Any:
    """Return ``value`` as a spreadsheet will not run it: a risky text cell gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    text = str(value)
    if numeric and _NUMBER.fullmatch(text):
        return text
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def safe_rows(rows: Iterable[Sequence[Any]], numeric: Iterable[str] = ()) -> Iterable[list[Any]]:
    """Yield the rows with every cell made safe; the first row is the header naming the columns.

    Args:
        rows: the header, then the data rows.
        numeric: names of the columns that hold numbers (kept as written when they are one).
    """
    numeric = frozenset(numeric)
    iterator = iter(rows)
    header = next(iterator, None)
    if header is None:
        return
    flags = [name in numeric for name in header]
    yield [safe_cell(name) for name in header]
    for row in iterator:
        yield [
            safe_cell(value, numeric=flags[index] if index < len(flags) else False)
            for index, value in enumerate(row)
        ]


def to_csv(rows: Iterable[Sequence[Any]], numeric: Iterable[str] = ()) -> str:
    """Return the rows (header first) as CSV text with every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(safe_rows(rows, numeric))
    return buffer.getvalue()
