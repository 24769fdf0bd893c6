"""Amazon's answers as input rows: FBA fulfillable quantities and competitor offers, in the input files' columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

__all__ = ["fba_rows", "offer_rows", "FBA_SCHEMA", "OFFER_SCHEMA"]

# Text columns: the SQL that merges them with the file's rows casts them exactly (money as DECIMAL, never a float).
FBA_SCHEMA = pa.schema([("channel", pa.string()), ("sku", pa.string()), ("fulfillable_quantity", pa.int64())])
OFFER_SCHEMA = pa.schema(
    [
        ("channel", pa.string()),
        ("asin", pa.string()),
        ("seller_id", pa.string()),
        ("price", pa.string()),
        ("shipping", pa.string()),
        ("fulfillment", pa.string()),
        ("observed_at", pa.string()),
    ]
)


def fba_rows(channel: str, summaries: Iterable[Mapping[str, Any]]) -> pa.Table:
    """getInventorySummaries items → (channel, sku, fulfillable_quantity); items without details are skipped."""
    rows = []
    for item in summaries:
        details = item.get("inventoryDetails") or {}
        quantity = details.get("fulfillableQuantity")
        sku = item.get("sellerSku")
        if sku and quantity is not None:
            rows.append({"channel": channel, "sku": str(sku), "fulfillable_quantity": max(0, int(quantity))})
    return pa.Table.from_pylist(rows, schema=FBA_SCHEMA)


def _amount(money: Any) -> str | None:
    if not isinstance(money, Mapping) or money.get("Amount") is None:
        return None
    return str(Decimal(str(money["Amount"])))


def offer_rows(
    channel: str, seller_id: str, responses: Iterable[Mapping[str, Any]], observed_at: datetime
) -> tuple[pa.Table, int]:
    """getItemOffersBatch responses → one row per competitor offer (our own offers are left out); observed_at is
    Amazon's OffersAvailableTime when given, else the pull time. Returns (rows, failed ASIN responses)."""
    rows, failed = [], 0
    for response in responses:
        status = (response.get("status") or {}).get("statusCode")
        payload = (response.get("body") or {}).get("payload") or {}
        if status != 200 or not payload:
            failed += 1
            continue
        asin = payload.get("ASIN") or (payload.get("Identifier") or {}).get("ASIN")
        seen = (payload.get("Summary") or {}).get("OffersAvailableTime") or observed_at.isoformat()
        for offer in payload.get("Offers") or []:
            if offer.get("MyOffer") or offer.get("SellerId") == seller_id:
                continue
            price = _amount(offer.get("ListingPrice"))
            if not asin or not offer.get("SellerId") or price is None:
                continue
            rows.append(
                {
                    "channel": channel,
                    "asin": str(asin),
                    "seller_id": str(offer["SellerId"]),
                    "price": price,
                    "shipping": _amount(offer.get("Shipping")) or "0",
                    "fulfillment": "FBA" if offer.get("IsFulfilledByAmazon") else "FBM",
                    "observed_at": str(seen),
                }
            )
    return pa.Table.from_pylist(rows, schema=OFFER_SCHEMA), failed
