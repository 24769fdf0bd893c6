"""Amazon's fee estimates per SKU, cached in the channel's `fee_estimates`, and the `product_fees` table pricing reads.

An estimate (getMyFeesEstimates, asked at the SKU's master price) is split into a referral rate (the referral fee
divided by the price asked for) and a fixed part (every other fee: FBA fulfilment, closing fees), exact Decimals and
integer minor units. The cache keeps one row per SKU: its newest good estimate and its newest attempt; a failed
attempt keeps the estimate it had. The `fees` input file's rows win over Amazon's.

Dagster-free: every function takes an open DuckDB connection to the channel's database, or Amazon's answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import duckdb
import pyarrow as pa

from resources.spapi import FeeQuery

__all__ = ["ESTIMATE_SCHEMA", "ensure_tables", "estimate_rows", "fee_stats", "plan", "record", "write_product_fees"]

RATE = Decimal("0.000001")  # DECIMAL(9,6)
FIXED = Decimal("0.0001")  # DECIMAL(18,4)

# One attempt per SKU: money as exact decimal strings (cast in SQL); estimated_at null when the attempt failed.
ESTIMATE_SCHEMA = pa.schema(
    [
        ("sku", pa.string()),
        ("referral_rate", pa.string()),
        ("fixed_fee", pa.string()),
        ("fixed_fee_minor", pa.int64()),
        ("price_basis_minor", pa.int64()),
        ("amazon_fulfilled", pa.bool_()),
        ("estimated_at", pa.timestamp("us", tz="UTC")),
        ("asked_at", pa.timestamp("us", tz="UTC")),
        ("error", pa.string()),
    ]
)

_TABLES = """
CREATE TABLE IF NOT EXISTS fee_estimates (
    sku VARCHAR NOT NULL, referral_rate DECIMAL(9,6), fixed_fee DECIMAL(18,4), fixed_fee_minor BIGINT,
    price_basis_minor BIGINT, amazon_fulfilled BOOLEAN, estimated_at TIMESTAMPTZ, asked_at TIMESTAMPTZ NOT NULL,
    error VARCHAR
)
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the `fee_estimates` cache (no-op when present)."""
    con.execute(_TABLES)


# --- what to ask ----------------------------------------------------------------------------------------------------

_PLAN = """
SELECT l.sku, l.price, l.fulfillment = 'FBA' AS amazon_fulfilled
FROM "{listings}" l LEFT JOIN fee_estimates e USING (sku)
WHERE l.price > 0
  AND l.sku NOT IN (SELECT sku FROM "{overridden}")
  AND (e.estimated_at IS NULL OR e.estimated_at < $stale_before
       OR e.amazon_fulfilled IS DISTINCT FROM (l.fulfillment = 'FBA'))
ORDER BY e.estimated_at IS NOT NULL, e.asked_at ASC NULLS FIRST, l.sku
"""


def plan(
    con: duckdb.DuckDBPyConnection, listings: str, overridden: str, now: datetime, max_age_days: int
) -> list[FeeQuery]:
    """The SKUs to ask Amazon about, in order: `listings` (sku, price, fulfillment) without the SKUs of `overridden`
    (the file's), whose estimate is missing, older than `max_age_days` or for the other fulfillment channel; never
    estimated first, then the least recently asked (a failing SKU goes back in line), ties by SKU."""
    sql = _PLAN.format(listings=listings, overridden=overridden)
    rows = con.execute(sql, {"stale_before": now - timedelta(days=max_age_days)}).fetchall()
    return [FeeQuery(sku, price, fba) for sku, price, fba in rows]


# --- Amazon's answers ------------------------------------------------------------------------------------------------


def _decimal(money: Any, currency: str) -> Decimal | None:
    if not isinstance(money, Mapping) or money.get("CurrencyCode") != currency:
        return None
    value = money.get("Amount")
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))  # the shortest repr of the parsed JSON number: the digits Amazon sent
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _minor(amount: Decimal, decimals: int) -> int:
    return int((amount * (10**decimals)).to_integral_value(ROUND_HALF_UP))


def _split(result: Mapping[str, Any], price: Decimal, currency: str) -> tuple[Decimal, Decimal] | str:
    """(referral rate, fixed fee) of one FeesEstimateResult, or why it cannot be used."""
    if result.get("Status") != "Success":
        error = result.get("Error") if isinstance(result.get("Error"), Mapping) else {}
        code = error.get("Code") or result.get("Status") or "no status"
        return f"{code}: {error.get('Message') or 'no message'}"
    estimate = result.get("FeesEstimate") if isinstance(result.get("FeesEstimate"), Mapping) else {}
    details = [d for d in estimate.get("FeeDetailList") or [] if isinstance(d, Mapping)]
    if not details:
        return "no fee breakdown (FeeDetailList) in the estimate"
    referral = fixed = Decimal(0)
    for detail in details:
        amount = _decimal(detail.get("FinalFee") or detail.get("FeeAmount"), currency)
        if amount is None:
            return f"fee {detail.get('FeeType')!r} has no amount in {currency}"
        if detail.get("FeeType") == "ReferralFee":
            referral += amount
        else:
            fixed += amount
    return (referral / price).quantize(RATE, ROUND_HALF_UP), fixed


def estimate_rows(
    asked: Sequence[FeeQuery],
    results: Iterable[Mapping[str, Any]],
    currency: str,
    decimals: int,
    asked_at: datetime,
) -> pa.Table:
    """One getMyFeesEstimates request's answers → one ESTIMATE_SCHEMA row per asked SKU: the split estimate, or the
    item's own error (a ClientError, a missing item, an unusable breakdown) with estimated_at null."""
    by_sku = {}
    for result in results:
        identifier = result.get("FeesEstimateIdentifier")
        identifier = identifier if isinstance(identifier, Mapping) else {}
        sku = identifier.get("SellerInputIdentifier") or identifier.get("IdValue")
        if isinstance(sku, str):
            by_sku.setdefault(sku, result)
    rows = []
    for query in asked:
        result = by_sku.get(query.sku)
        split = _split(result, query.price, currency) if result is not None else "no answer for this SKU"
        row: dict[str, Any] = {
            "sku": query.sku,
            "price_basis_minor": _minor(query.price, decimals),
            "amazon_fulfilled": query.amazon_fulfilled,
            "asked_at": asked_at,
        }
        if isinstance(split, str):
            row["error"] = split
        else:
            rate, fixed = split
            row.update(
                referral_rate=str(rate),
                fixed_fee=str(fixed.quantize(FIXED, ROUND_HALF_UP)),
                fixed_fee_minor=_minor(fixed, decimals),
                estimated_at=asked_at,
            )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=ESTIMATE_SCHEMA)


# MERGE, not a key (a DuckLake has none): a good estimate replaces the SKU's row, a failed attempt only marks it. One
# WHEN MATCHED action with CASEs: a DuckLake's MERGE takes a single UPDATE action.
_RECORD = """
MERGE INTO fee_estimates e
USING (SELECT sku, CAST(referral_rate AS DECIMAL(9,6)) AS referral_rate, CAST(fixed_fee AS DECIMAL(18,4)) AS fixed_fee,
              fixed_fee_minor, price_basis_minor, amazon_fulfilled, estimated_at, asked_at, error,
              estimated_at IS NOT NULL AS good
       FROM incoming_estimates) i
ON e.sku = i.sku
WHEN MATCHED THEN UPDATE SET
    referral_rate = CASE WHEN i.good THEN i.referral_rate ELSE e.referral_rate END,
    fixed_fee = CASE WHEN i.good THEN i.fixed_fee ELSE e.fixed_fee END,
    fixed_fee_minor = CASE WHEN i.good THEN i.fixed_fee_minor ELSE e.fixed_fee_minor END,
    price_basis_minor = CASE WHEN i.good THEN i.price_basis_minor ELSE e.price_basis_minor END,
    amazon_fulfilled = CASE WHEN i.good THEN i.amazon_fulfilled ELSE e.amazon_fulfilled END,
    estimated_at = CASE WHEN i.good THEN i.estimated_at ELSE e.estimated_at END,
    asked_at = i.asked_at,
    error = CASE WHEN i.good THEN NULL ELSE i.error END
WHEN NOT MATCHED THEN INSERT (sku, referral_rate, fixed_fee, fixed_fee_minor, price_basis_minor, amazon_fulfilled,
    estimated_at, asked_at, error)
    VALUES (i.sku, i.referral_rate, i.fixed_fee, i.fixed_fee_minor, i.price_basis_minor,
            CASE WHEN i.estimated_at IS NOT NULL THEN i.amazon_fulfilled END, i.estimated_at, i.asked_at, i.error)
"""


def record(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    """Merge `estimate_rows` output into the cache."""
    if not rows.num_rows:
        return
    con.register("incoming_estimates", rows.select(ESTIMATE_SCHEMA.names))
    try:
        con.execute(_RECORD)
    finally:
        con.unregister("incoming_estimates")


# --- the table pricing reads -----------------------------------------------------------------------------------------

_PRODUCT_FEES = """
CREATE OR REPLACE TABLE product_fees AS
WITH mapped AS (SELECT DISTINCT sku FROM "{listings}"),
file AS (
    SELECT sku, referral_rate, CAST(fixed_fee AS DECIMAL(18,4)) AS fixed_fee,
           to_minor(fixed_fee, $decimals) AS fixed_fee_minor, 'file' AS source,
           NULL::TIMESTAMPTZ AS estimated_at, NULL::BIGINT AS price_basis_minor
    FROM "{file}"
), amazon AS (
    SELECT sku, referral_rate, fixed_fee, fixed_fee_minor, 'amazon' AS source, estimated_at, price_basis_minor
    FROM fee_estimates
    WHERE estimated_at IS NOT NULL AND sku NOT IN (SELECT sku FROM file)
)
SELECT sku, CAST(referral_rate AS DECIMAL(9,6)) AS referral_rate, fixed_fee, fixed_fee_minor, source, estimated_at,
       price_basis_minor
FROM (SELECT * FROM file UNION ALL SELECT * FROM amazon)
WHERE sku IN (SELECT sku FROM mapped)
ORDER BY sku
"""


def write_product_fees(con: duckdb.DuckDBPyConnection, listings: str, file: str, decimals: int) -> int:
    """Table `product_fees` (sku, referral_rate, fixed_fee, fixed_fee_minor, source, estimated_at,
    price_basis_minor): per SKU of `listings`, the `file` row (sku, referral_rate, fixed_fee; the `fees` input) when
    there is one, else Amazon's newest good estimate, however old (an old estimate beats none). Returns the rows."""
    con.execute(_PRODUCT_FEES.format(listings=listings, file=file), {"decimals": decimals})
    return con.execute("SELECT count(*) FROM product_fees").fetchall()[0][0]


def fee_stats(con: duckdb.DuckDBPyConnection, listings: str, now: datetime) -> dict[str, Any]:
    """Counts for the asset's metadata: mapped SKUs, SKUs with fees per source, those without, and the age in days
    of the oldest Amazon estimate in use (None when none is)."""
    row = con.execute(
        f"""
        SELECT (SELECT count(DISTINCT sku) FROM "{listings}"),
               count(*) FILTER (WHERE source = 'amazon'), count(*) FILTER (WHERE source = 'file'),
               epoch($now::TIMESTAMPTZ - min(estimated_at)) / 86400.0
        FROM product_fees
        """,
        {"now": now},
    ).fetchall()[0]
    mapped, amazon, file, oldest = row
    return {
        "mapped_skus": mapped,
        "skus_with_fees": amazon + file,
        "from_amazon": amazon,
        "from_file": file,
        "without_fees": mapped - amazon - file,
        "oldest_estimate_days": oldest,
    }
