"""JSON bodies for Amazon: money goes out as exact decimals, never as binary floats.

`dumps` writes `decimal.Decimal` as a JSON number with exactly its digits (``Decimal("19.99")`` → ``19.99``) and
refuses `float`, so a price can never reach Amazon as ``19.989999999999998``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

__all__ = ["dumps"]


def _render(value: Any, out: list[str]) -> None:
    if value is None or value is True or value is False or isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send non-finite decimal {value!r}")
        # Plain positional notation: Amazon's parsers expect 19.99, not 1.999E+1.
        out.append(format(value, "f"))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise TypeError(f"refusing to send binary float {value!r}: pass money and quantities as Decimal or int")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _render(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _render(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """UTF-8 JSON bytes for `value` (dict/list/str/int/bool/None/Decimal); `float` raises TypeError."""
    out: list[str] = []
    _render(value, out)
    return "".join(out).encode("utf-8")
