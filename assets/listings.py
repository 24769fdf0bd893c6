"""The create_listing job: one new offer on one channel, from the master's product data."""

import json
from datetime import UTC, datetime

import dagster as dg

from pipelines.partitions import CHANNELS
from resources.spapi_resource import SpApiResource
from resources.transaction import transaction
from resources.warehouse import Warehouse, channel_tables
from sync.listing import ListingRefused, create_listing, listing_attributes
from sync.tables import SYNC_HISTORY

__all__ = ["create_listing_job", "CreateListingConfig"]

_MAPPINGS = """
CREATE TABLE IF NOT EXISTS listing_mappings (
    channel VARCHAR, sku VARCHAR, asin VARCHAR, product_type VARCHAR, status VARCHAR, code VARCHAR, message VARCHAR,
    approval_link VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ
)
"""


class CreateListingConfig(dg.Config):
    """`channel`, `sku` (in master_inventory), Amazon `product_type`, extra Amazon `attributes_json` (a JSON object
    of listing attributes, e.g. bullet_point, condition_type); `brand_registered: true` uses Brand Registry's
    identifier exemption when the master has no product_id; `asin`: list against this existing catalog ASIN."""

    channel: str
    sku: str
    product_type: str
    attributes_json: str = "{}"
    brand_registered: bool = False
    asin: str | None = None


def _product(con, sku: str) -> list[dict]:
    result = con.execute("SELECT * FROM master_inventory WHERE sku = ?", [sku])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


@dg.op
def create_listing_op(
    context: dg.OpExecutionContext, config: CreateListingConfig, warehouse: Warehouse, spapi: SpApiResource
) -> None:
    """Pre-check gating, submit putListingsItem, record the outcome (sync_history, operation create_listing) and the
    new ASIN (listing_mappings; the seller adds the channel_mappings row with floor and ceiling)."""
    channel = CHANNELS.get(config.channel)
    if channel is None:
        raise dg.Failure(description=f"unknown channel {config.channel!r} (configured: {', '.join(CHANNELS)})")
    with warehouse.connect(channel.name) as con:
        rows = _product(con, config.sku) if "master_inventory" in channel_tables(con) else []
    if not rows:
        raise dg.Failure(description=f"SKU {config.sku!r} is not in master_inventory of channel {channel.name}")
    try:
        attributes = listing_attributes(
            config.sku, rows[0], channel, json.loads(config.attributes_json), config.brand_registered
        )
    except ListingRefused as exc:
        raise dg.Failure(description=str(exc)) from None
    client = spapi.client_for(channel.seller_id, region=channel.region)
    result = create_listing(client, channel, config.sku, config.product_type, attributes, asin=config.asin)
    now = datetime.now(UTC)
    with warehouse.connect(channel.name) as con:
        con.execute(SYNC_HISTORY)
        con.execute(_MAPPINGS)
        for attempt in transaction(con):
            with attempt:
                con.execute(
                    "INSERT INTO sync_history VALUES (?, ?, ?, 'create_listing', ?, ?, ?, ?, ?)",
                    [
                        channel.name,
                        config.sku,
                        result.asin,
                        result.status,
                        result.code,
                        " ".join(filter(None, [result.message, result.approval_link])) or None,
                        context.run_id,
                        now,
                    ],
                )
                con.execute(
                    "INSERT INTO listing_mappings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        channel.name,
                        config.sku,
                        result.asin,
                        config.product_type,
                        result.status,
                        result.code,
                        result.message,
                        result.approval_link,
                        context.run_id,
                        now,
                    ],
                )
    if result.status in ("accepted", "warning"):
        context.log.info(
            f"listed {config.sku} as {result.asin} on {channel.name}; add it to channel_mappings: "
            f"{channel.name},{config.sku},{result.asin},FBM,,<min_price>,<max_price>,,"
        )
    else:
        context.log.warning(
            f"{config.sku} not listed: {result.status} {result.message or ''} {result.approval_link or ''}"
        )


@dg.job(description="Create one listing on one channel (putListingsItem) from the master's product data.")
def create_listing_job():
    create_listing_op()
