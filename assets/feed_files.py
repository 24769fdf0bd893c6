"""The generated feed documents of a channel, written atomically under `<data_dir>/feeds/<channel>/` (in the deployed
mode under `<lake>/feeds/<channel>/` in S3: `feeds.store`).

JSON_LISTINGS_FEED is what gets submitted to Amazon; the two flat files are kept for inspection, Seller Central
upload and legacy tools (Amazon ends them FATAL since 2025-07-31).
"""

import dagster as dg
import duckdb

from assets.metadata import file_metadata
from feeds.flat_files import INVENTORY_LOADER, PRICE_QUANTITY, write_flat_file
from feeds.listings_json import FEED_TYPE, HEAD_BYTES, document_head, write_listings_feed
from feeds.store import channel_feeds
from feeds.updates import offer_updates
from pipelines.partitions import channel_for, channel_partitions
from resources.warehouse import Warehouse
from seller.inputs import ERROR
from seller.marketplaces import FBA_CHANNEL_CODE

_DEPS = ["buybox_prices", "reconciled_inventory"]


def publishable_updates(con: duckdb.DuckDBPyConnection, channel: str) -> None:
    """Refuse to publish while any input of the channel is invalid (an error; warnings block nothing), then expose the
    `updates` relation."""
    problems = con.execute("SELECT count(*) FROM input_errors WHERE severity = ?", [ERROR]).fetchall()[0][0]
    if problems:
        raise dg.Failure(
            description=f"channel {channel}: {problems} input problem(s) recorded in input_errors; "
            "no feed is written until the seller's files are fixed",
        )
    con.register("updates", offer_updates(con, "buybox_prices", "reconciled_inventory"))  # temp: not stored


def _flat_file_asset(feed_type: str, name: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=channel_partitions,
        group_name="feeds",
        kinds={"file"},
        deps=_DEPS,
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        channel = channel_for(context.partition_key)
        feeds = channel_feeds(channel.name, warehouse.feeds_dir(channel.name))
        name = f"{feed_type}.txt"
        with warehouse.connect(channel.name) as con:
            publishable_updates(con, channel.name)
            with feeds.target(name) as path:
                fba_code = FBA_CHANNEL_CODE[channel.region]
                rows = write_flat_file(con, feed_type, "updates", path, decimals=channel.decimals, fba_code=fba_code)
                with open(path, encoding="utf-8") as handle:
                    head = [next(handle, "").rstrip("\n") for _ in range(6)]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "feed_type": feed_type,
                **file_metadata([feeds.stat(name)]),
                "preview": dg.MetadataValue.md("```\n" + "\n".join(head) + "\n```"),
            }
        )

    return _asset


price_quantity_feed = _flat_file_asset(
    PRICE_QUANTITY,
    "price_quantity_feed",
    "The POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA flat file of the channel: one tab-delimited UTF-8 row per "
    "mapped SKU with price, min/max seller-allowed price, quantity (empty for FBA), handling time and fulfillment "
    "channel (DEFAULT for FBM, the region's AMAZON_* code for FBA). Source: buybox_prices and reconciled_inventory.",
)

inventory_loader_feed = _flat_file_asset(
    INVENTORY_LOADER,
    "inventory_loader_feed",
    "The POST_FLAT_FILE_INVLOADER_DATA flat file of the channel in Amazon's column order: one row per mapped SKU, "
    "product-id = the ASIN (type 1), item-condition 11 (New), add-delete `a`, price, min/max and quantity (empty "
    "for FBA). Source: buybox_prices and reconciled_inventory.",
)


@dg.asset(partitions_def=channel_partitions, group_name="feeds", kinds={"json"}, deps=_DEPS)
def listings_feed(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The JSON_LISTINGS_FEED documents of the channel, the bulk feed Amazon accepts today: one PATCH message per
    mapped SKU replacing purchasable_offer (price, min/max) and, for FBM, fulfillment_availability (quantity,
    handling time); at most 25,000 messages per document, numbered JSON_LISTINGS_FEED-0001.json upward. Source:
    buybox_prices and reconciled_inventory."""
    channel = channel_for(context.partition_key)
    feeds = channel_feeds(channel.name, warehouse.feeds_dir(channel.name))
    head = None
    with warehouse.connect(channel.name) as con:
        publishable_updates(con, channel.name)
        with feeds.staged(FEED_TYPE) as staging:
            counts = write_listings_feed(
                con,
                "updates",
                staging,
                seller_id=channel.seller_id,
                marketplace_id=channel.marketplace_id,
                currency=channel.currency,
                decimals=channel.decimals,
            )
            if counts:
                with open(staging / next(iter(counts)), "rb") as handle:
                    head = document_head(handle.read(HEAD_BYTES))
    stored = feeds.files(FEED_TYPE)
    names = [document.name.rsplit("/", 1)[-1] for document in stored]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),
            "feed_type": FEED_TYPE,
            "documents": len(stored),
            **file_metadata(stored),
            "document_paths": dg.MetadataValue.md(
                "\n".join(
                    f"- `{doc.location}`: {counts.get(name, 0):,} messages"
                    for doc, name in zip(stored, names, strict=True)
                )
                or "_no document_"
            ),
            "messages_per_document": dg.MetadataValue.json(counts),
            "preview": dg.MetadataValue.md(
                f"The start of `{names[0]}` ({counts[names[0]]:,} messages):\n\n```json\n{head}\n```"
                if head and names
                else "_no messages_"
            ),
        }
    )


feed_assets = [price_quantity_feed, inventory_loader_feed, listings_feed]
