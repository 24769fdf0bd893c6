"""`offer_observations`: the channel's history of competitor offers, and the budgeted getItemOffersBatch pull that
keeps the ASINs Amazon does not notify about fresh."""

import time
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.partitions import channel_for, channel_partitions
from resources.spapi import ServerError, SpApiTimeout, Throttled
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse, channel_tables
from seller.config import Channel
from sync import offers
from sync.pull import offer_rows

__all__ = ["OffersPullConfig", "import_notified", "mapped_asins", "offer_observations"]

FLUSH_SECONDS = 60.0  # how often the pull appends what it got to the channel's file


class OffersPullConfig(dg.Config):
    """`offline: true` asks Amazon nothing and imports no notification. The pull stops after `pull_seconds` (the
    offers pull job runs every 5 minutes: 270 s leaves room for the run's start) or before it would fill more than
    `pull_cap_share` of the seller's module caps (30/minute, 36,000/day: the rest stays for pushes)."""

    offline: bool = False
    pull_seconds: float = 270.0
    pull_cap_share: float = 0.5


def mapped_asins(con: duckdb.DuckDBPyConnection) -> str:
    """A temp view of the channel's mapped ASINs (empty before channel_mappings was ever materialized)."""
    exists = "channel_mappings" in channel_tables(con)
    source = "SELECT asin FROM channel_mappings" if exists else "SELECT NULL::VARCHAR AS asin WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP VIEW mapped_asins AS {source}")
    return "mapped_asins"


def import_notified(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, channel: Channel, now: datetime) -> int:
    """The channel's ANY_OFFER_CHANGED rows stored since the last import → observations; returns the ASINs."""
    offers.ensure_tables(con)
    if not warehouse.has_notifications():
        return 0
    since = offers.notified_since(con)
    with warehouse.connect_notifications(read_only=True) as store:  # one short read: the sensor writes this file
        observed, snapshots, newest = offers.load_notified(store, channel.name, since)
    retention = channel.pricing.observation_retention_days
    return offers.import_notified(con, observed, snapshots, newest, now, retention)


@dg.asset(
    partitions_def=channel_partitions,
    group_name="pricing",
    kinds={"duckdb"},
    deps=["channel_mappings", "notification_store"],
    pool="spapi",
)
def offer_observations(
    context: dg.AssetExecutionContext, config: OffersPullConfig, warehouse: Warehouse, spapi: SpApiResource
) -> dg.MaterializeResult:
    """Every offer seen on the channel's mapped ASINs, append-only (the retention, `observation_retention_days`,
    alone deletes): one row per (ASIN, seller, observed_at, source), ours included, and one `offer_snapshots` row per
    ASIN and sighting (Buy Box and lowest landed prices, competitive price threshold, whether we hold the Buy Box).
    Sources: ANY_OFFER_CHANGED notifications from the sensor's store, this asset's getItemOffersBatch pull and the
    `competitor_prices` file. The pull asks for the ASINs whose newest sighting is oldest (never seen first), 20 per
    request, within `pull_seconds` and `pull_cap_share`; the next run goes on from there. Amazon notifies only part of
    a catalog (10-20 % of ASINs), so this pull is what keeps the rest fresh; its own bucket (0.1 requests/s) allows
    about 7,000 ASINs an hour."""
    channel = channel_for(context.partition_key)
    retention = channel.pricing.observation_retention_days
    if config.offline:
        return dg.MaterializeResult(metadata={"amazon": "offline"})
    now = datetime.now(UTC)
    # The channel's file is opened only around each read and append: a prices run of the channel (another process)
    # writes it meanwhile.
    with warehouse.connect(channel.name) as con:
        notified = import_notified(con, warehouse, channel, now)
        plan = offers.pull_plan(con, mapped_asins(con))
    client = spapi.client_for(channel.seller_id, region=channel.region)
    asked = failed = added = 0
    stopped = "complete"
    batches = client.iter_item_offers_batches(
        channel.marketplace_id, plan, max_seconds=config.pull_seconds, cap_share=config.pull_cap_share
    )
    pending: list[tuple[pa.Table, pa.Table]] = []
    flushed = time.monotonic()

    def flush() -> int:
        nonlocal flushed
        flushed = time.monotonic()
        if not pending:
            return 0
        observed, snapshots = (pa.concat_tables(tables) for tables in zip(*pending, strict=True))
        pending.clear()
        with warehouse.connect(channel.name) as con:
            return offers.append(con, "pull", observed, snapshots, datetime.now(UTC), retention)[0]

    try:
        for chunk, responses in batches:
            observed, snapshots = offer_rows(channel.seller_id, chunk, responses, datetime.now(UTC))
            pending.append((observed, snapshots))
            asked += len(chunk)
            failed += snapshots.filter(pc.equal(snapshots["status"], "failed")).num_rows
            # Written once a minute, not per request: a prices run holding the file would otherwise make the pull
            # wait for its lock between two requests, and Amazon's bucket refills meanwhile for nobody.
            if time.monotonic() - flushed >= FLUSH_SECONDS:
                added += flush()
    # Amazon unavailable or busy: what was asked so far is kept and pricing goes on from the observations. A lost
    # or revoked grant (Unauthorized) or a request Amazon rejects fails the step like every other SP-API step.
    except (Throttled, ServerError, SpApiTimeout) as exc:
        stopped = f"error: {exc}"
        context.log.warning(f"offers pull stopped after {asked} of {len(plan)} ASINs: {exc}")
    finally:
        added += flush()
    if stopped == "complete" and asked < len(plan):
        stopped = f"budget ({asked} of {len(plan)} ASINs; pull_seconds {config.pull_seconds:g}, cap share "
        stopped += f"{config.pull_cap_share:g})"
    with warehouse.connect(channel.name) as con:
        expired = offers.apply_retention(con, datetime.now(UTC), retention)
        total = con.execute("SELECT count(*) FROM offer_observations").fetchall()[0][0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(total),
            "notified_asins": dg.MetadataValue.int(notified),
            "pulled_asins": dg.MetadataValue.int(asked),
            "pull_failed_asins": dg.MetadataValue.int(failed),
            "pull_planned_asins": dg.MetadataValue.int(len(plan)),
            "pull_stopped": dg.MetadataValue.text(stopped),
            "observations_added": dg.MetadataValue.int(added),
            "observations_expired": dg.MetadataValue.int(expired),
            **spapi.metadata(),
        }
    )
