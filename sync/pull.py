"""Amazon's answers as rows: FBA fulfillable quantities in the input file's columns, and getItemOffersBatch answers as
offer observations and snapshots (sync.offers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from sync.offers import OBSERVATION_SCHEMA, SNAPSHOT_SCHEMA, lower_keys, offer_fields, summary_fields

__all__ = ["fba_rows", "offer_rows", "FBA_SCHEMA"]

# Text columns: the SQL that merges them with the file's rows casts them exactly.
FBA_SCHEMA = pa.schema([("channel", pa.string()), ("sku", pa.string()), ("fulfillable_quantity", pa.int64())])


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


def _time(value: Any, default: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return default
    return parsed if parsed.tzinfo else default


def offer_rows(
    seller_id: str, asked: Sequence[str], responses: Iterable[Mapping[str, Any]], requested_at: datetime
) -> tuple[pa.Table, pa.Table]:
    """One getItemOffersBatch request's answers → (observations, snapshots) in sync.offers' schemas: every listed
    offer, ours included, observed at Amazon's OffersAvailableTime when given, else `requested_at`; one snapshot per
    asked ASIN, status `failed` (at `requested_at`) when its item failed or is missing from the answer."""
    observations, snapshots, answered = [], [], set()
    for response in responses:
        doc = lower_keys(dict(response))
        status = (doc.get("status") or {}).get("statuscode")
        payload = (doc.get("body") or {}).get("payload") or {}
        asin = (
            payload.get("asin")
            or (payload.get("identifier") or {}).get("asin")
            or (doc.get("request") or {}).get("asin")
        )
        if not asin or status != 200 or not payload:
            continue
        summary = payload.get("summary") or {}
        seen = _time(summary.get("offersavailabletime"), requested_at) if summary.get("offersavailabletime") else None
        observed_at = seen or requested_at
        offers: dict[str, dict[str, Any]] = {}
        for offer in payload.get("offers") or []:
            fields = offer_fields(offer) if isinstance(offer, dict) else None
            if fields is not None:
                offers.setdefault(fields["seller_id"], {"asin": asin, "observed_at": observed_at, **fields})
        observations += offers.values()
        snapshots.append(
            {
                "asin": asin,
                "observed_at": observed_at,
                "status": "ok",
                **summary_fields(summary, list(offers.values()), seller_id),
            }
        )
        answered.add(asin)
    snapshots += [
        {"asin": asin, "observed_at": requested_at, "status": "failed"}
        for asin in dict.fromkeys(asked)
        if asin not in answered
    ]
    return (
        pa.Table.from_pylist(observations, schema=OBSERVATION_SCHEMA),
        pa.Table.from_pylist(snapshots, schema=SNAPSHOT_SCHEMA),
    )
