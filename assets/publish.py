"""The push: what was submitted to Amazon for a channel this run, with Amazon's answer per SKU."""

import dagster as dg
import duckdb

from assets.feed_files import publishable_updates
from feeds.store import channel_feeds
from pipelines.partitions import channel_for, channel_partitions
from resources.spapi import FeedPolling
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from sync.changes import FEED_THRESHOLD
from sync.push import Push, PushSettings

__all__ = ["listings_submission", "SubmissionConfig"]


class SubmissionConfig(dg.Config):
    """`offline`: send nothing this run. `feed_threshold`: with `use_feed: auto`, more changed SKUs than this go by
    JSON_LISTINGS_FEED. `legacy_flat_files`: submit POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA instead (only the
    emulator's --legacy-flat-files accepts it; Amazon ends it FATAL). `readback_sample`: accepted SKUs read back with
    getListingsItem (every warned SKU is read back too). `restricted_retry_hours`: a SKU Amazon answered
    category_restricted is not resent for this long (then retried, to pick up an approval). `poll_*`: how long to wait
    for a feed before leaving it to the next run. Amazon's limit of 5 JSON_LISTINGS_FEED submissions per 5 minutes is
    the SP-API client's (shared by every channel of the seller in the region)."""

    offline: bool = False
    feed_threshold: int = FEED_THRESHOLD
    legacy_flat_files: bool = False
    readback_sample: int = 20
    restricted_retry_hours: float = 24.0
    poll_initial_seconds: float = 5.0
    poll_max_wait_seconds: float = 1800.0


@dg.asset(
    partitions_def=channel_partitions,
    group_name="sync",
    kinds={"duckdb", "api"},
    deps=["buybox_prices", "reconciled_inventory", "listings_feed"],
    pool="spapi",
)
def listings_submission(
    context: dg.AssetExecutionContext, config: SubmissionConfig, warehouse: Warehouse, spapi: SpApiResource
) -> dg.MaterializeResult:
    """What was submitted to Amazon for the channel this run, with Amazon's answer: only offers whose price, floor,
    ceiling or FBM quantity differ from the last state Amazon confirmed (`published_state`) are sent, by
    JSON_LISTINGS_FEED (use_feed true, or auto above the threshold) or per-SKU patchListingsItem; feeds are recorded
    in the `submissions` ledger before createFeed and polled by the next run if this one dies. Grain: one `submit`
    row per mapped SKU in sync_history (accepted, warning, error, category_restricted, not_applied, deferred,
    pending, unchanged). Source: buybox_prices and reconciled_inventory (the listings_feed message format)."""
    channel = channel_for(context.partition_key)
    if config.offline:
        return dg.MaterializeResult(metadata={"offline": True, "dagster/row_count": 0})
    settings = PushSettings(
        feed_threshold=config.feed_threshold,
        legacy_flat_files=config.legacy_flat_files,
        readback_sample=config.readback_sample,
        restricted_retry_hours=config.restricted_retry_hours,
        polling=FeedPolling(
            initial=config.poll_initial_seconds,
            maximum=min(60.0, config.poll_max_wait_seconds),
            in_queue_deadline=config.poll_max_wait_seconds,
            max_wait=config.poll_max_wait_seconds,
        ),
    )
    client = spapi.client_for(channel.seller_id, region=channel.region)

    def updates(con: duckdb.DuckDBPyConnection) -> str:
        publishable_updates(con, channel.name)
        return "updates"

    # The push opens the channel's file only to read and write, never while it waits on Amazon.
    summary = Push(
        lambda: warehouse.connect(channel.name),
        client,
        channel,
        run_id=context.run_id,
        settings=settings,
        feeds=channel_feeds(channel.name, warehouse.feeds_dir(channel.name)),
    ).run(updates)
    if summary.statuses.get("deferred"):
        context.log.warning(f"{summary.statuses['deferred']} SKU(s) deferred to the next run (quota or access)")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary.changed,
            "path": summary.path,
            "changed": summary.changed,
            "feeds_submitted": summary.feeds_submitted,
            "feeds_resumed": summary.resumed_feeds,
            "feed_ids": ", ".join(summary.feed_ids) or "-",
            "patches_sent": summary.patches_sent,
            "read_back": summary.read_back,
            **{f"status_{name}": count for name, count in summary.statuses.items()},
            **spapi.metadata(),
        }
    )
