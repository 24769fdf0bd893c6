"""JSON in and out with exact money: request bodies parse numbers into Decimal, Decimals render as JSON numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "loads", "money_str"]


class _Number(float):
    """A float that prints as the Decimal it came from (the json C encoder uses float.__repr__ for floats)."""

    __slots__ = ()


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        # float(Decimal("19.99")) prints as 19.99: repr is the shortest round-trip string, and no arithmetic
        # ever happens on floats, so the rendered number equals the stored Decimal for any realistic price.
        return float(obj)
    if isinstance(obj, set | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: bytes | str) -> Any:
    return json.loads(data, parse_float=Decimal)


def money_str(amount: Decimal, decimals: int) -> str:
    """Decimal string with the currency's minor units: 19.9 → '19.90', JPY 1500 → '1500'."""
    quantum = Decimal(1).scaleb(-decimals)
    return str(amount.quantize(quantum))
