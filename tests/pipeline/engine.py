"""The offline engine end to end without Dagster, for golden-file tests: inputs -> prices -> feed documents."""

import tempfile
from datetime import datetime
from pathlib import Path

import duckdb

from feeds.flat_files import write_flat_file
from feeds.listings_json import document_name, listings_feed_documents
from feeds.updates import offer_updates
from pricing.channel import price_channel
from pricing.money import install_money_macros
from seller.config import Channel
from seller.inputs import INPUTS, validated_input
from seller.marketplaces import FBA_CHANNEL_CODE
from seller.reconcile import reconcile


def channel_engine(data_dir, channels: dict[str, Channel], channel: str, now: datetime) -> duckdb.DuckDBPyConnection:
    """A connection holding the channel's validated inputs and its `updates` relation."""
    con = duckdb.connect()
    install_money_macros(con)
    for name in INPUTS:
        with validated_input(con, name, data_dir, channels, channel=channel) as loaded:
            assert loaded.errors.num_rows == 0, loaded.errors.to_pylist()
    ch = channels[channel]
    reconcile(con, "channel_mappings", "master_inventory", "fba_inventory", allocation=ch.allocation).create(
        "reconciled_inventory"
    )
    # What the buybox_prices asset prices: the rules engine over the channel's tables (no pricing_rules file here).
    price_channel(con, ch, now).create("buybox_prices")
    offer_updates(con, "buybox_prices", "reconciled_inventory").create("updates")
    return con


def documents(con, channel: Channel) -> dict[str, bytes]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for feed_type in ("POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", "POST_FLAT_FILE_INVLOADER_DATA"):
            path = Path(tmp) / f"{feed_type}.txt"
            write_flat_file(
                con, feed_type, "updates", path, decimals=channel.decimals, fba_code=FBA_CHANNEL_CODE[channel.region]
            )
            out[path.name] = path.read_bytes()
    docs = listings_feed_documents(
        con,
        "updates",
        seller_id=channel.seller_id,
        marketplace_id=channel.marketplace_id,
        currency=channel.currency,
        decimals=channel.decimals,
    )
    for i, (data, _) in enumerate(docs, start=1):
        out[document_name(i)] = data
    return out
