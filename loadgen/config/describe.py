"""How an error line names a value read from a TOML file.

One wording for every reader of scenario files (the top level, ``[[endpoints]]``,
a step's ``extract`` and ``expect``), so the same mistake reads the same way
wherever it is made; long strings are cut, so a line stays one line.
"""

from __future__ import annotations

import datetime
from typing import Any


def describe_value(value: Any) -> str:
    """A value in an error line: its TOML type and, if short, the value."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, int):
        return f"the integer {value}" if abs(value) < 10**30 else "an integer"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return "a date/time"
    return type(value).__name__
