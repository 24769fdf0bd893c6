"""The two legacy flat-file listing feeds, tab-delimited UTF-8 with one header row and LF line ends.

Amazon stopped processing both on 2025-07-31 (getFeed answers FATAL); they are written for inspection, Seller
Central upload and legacy tools. Columns are identified by their heading, so the header is exactly Amazon's:
- POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA: the Price & Quantity template (Seller Central help 201576480).
- POST_FLAT_FILE_INVLOADER_DATA: the Inventory Loader template; product-id-type 1 = ASIN, item-condition 11 = New
  (text such as "New" fails with error 8115), add-delete `a` = add or update.
FBA rows leave quantity empty (Amazon counts FBA stock) and carry the region's AMAZON_* fulfillment channel.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from feeds.files import atomic_target

__all__ = [
    "PRICE_QUANTITY",
    "INVENTORY_LOADER",
    "PRICE_QUANTITY_HEADER",
    "INVENTORY_LOADER_HEADER",
    "write_flat_file",
]

PRICE_QUANTITY = "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA"
INVENTORY_LOADER = "POST_FLAT_FILE_INVLOADER_DATA"

PRICE_QUANTITY_HEADER = (
    "sku",
    "price",
    "minimum-seller-allowed-price",
    "maximum-seller-allowed-price",
    "quantity",
    "handling-time",
    "fulfillment-channel",
)
INVENTORY_LOADER_HEADER = (
    "sku",
    "product-id",
    "product-id-type",
    "price",
    "minimum-seller-allowed-price",
    "maximum-seller-allowed-price",
    "item-condition",
    "quantity",
    "add-delete",
    "will-ship-internationally",
    "expedited-shipping",
    "standard-plus",
    "item-note",
    "fulfillment-center-id",
)

_CHANNEL = "CASE WHEN fulfillment = 'FBA' THEN $fba_code ELSE 'DEFAULT' END"
_ROWS = {
    PRICE_QUANTITY: [
        "sku",
        "money_text(price_minor, $decimals)",
        "money_text(min_minor, $decimals)",
        "money_text(max_minor, $decimals)",
        "coalesce(CAST(quantity AS VARCHAR), '')",
        "CASE WHEN fulfillment = 'FBA' THEN '' ELSE coalesce(CAST(handling_time_days AS VARCHAR), '') END",
        _CHANNEL,
    ],
    INVENTORY_LOADER: [
        "sku",
        "asin",
        "'1'",
        "money_text(price_minor, $decimals)",
        "money_text(min_minor, $decimals)",
        "money_text(max_minor, $decimals)",
        "'11'",
        "coalesce(CAST(quantity AS VARCHAR), '')",
        "'a'",
        "''",
        "''",
        "''",
        "''",
        _CHANNEL,
    ],
}
_HEADERS = {PRICE_QUANTITY: PRICE_QUANTITY_HEADER, INVENTORY_LOADER: INVENTORY_LOADER_HEADER}


def write_flat_file(
    con: duckdb.DuckDBPyConnection, feed_type: str, updates: str, path: str | Path, *, decimals: int, fba_code: str
) -> int:
    """Write `feed_type` for the offer updates in relation `updates` to `path` (atomically); returns the data rows.

    DuckDB streams the rows straight to disk. Each row is one pre-joined text column whose name is the header line,
    written without quoting: SKUs reaching this point carry no tab or line break (validation rejects them).
    """
    line = " || chr(9) || ".join(_ROWS[feed_type])
    header = "\t".join(_HEADERS[feed_type])
    with atomic_target(path) as tmp:
        con.execute(
            f"COPY (SELECT {line} AS \"{header}\" FROM {updates} ORDER BY sku) TO '{tmp}' "
            "(FORMAT csv, HEADER true, QUOTE '', ESCAPE '', DELIMITER '\\x1f', NEW_LINE '\\n')",
            {"decimals": decimals, "fba_code": fba_code},
        ).fetchall()
    return con.execute(f"SELECT count(*) FROM {updates}").fetchall()[0][0]
