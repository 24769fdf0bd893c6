"""Jobs over the channel partitions. Every run of a channel is tagged with its seller and its seller × region (from
the partition, so schedules, sensors, backfills and UI launches all carry them): the run queue's tag limits use
`seller_region` to keep one sync run per seller and region, since Amazon's rate limits are per seller and region."""

import dagster as dg

from assets.status import FRESHNESS_CHECKS
from pipelines.partitions import channel_for, channel_partitions

__all__ = [
    "channel_pipeline_job",
    "channel_run_tags",
    "channel_status_job",
    "inventory_job",
    "offers_pull_job",
    "prices_job",
    "price_backtest_job",
    "notification_setup_job",
    "order_poll_job",
]


def channel_run_tags(partition_key: str) -> dict[str, str]:
    """The run tags of a channel's partition: `seller` and `seller_region` (`<seller_id>-<region>`)."""
    channel = channel_for(partition_key)
    return {"seller": channel.seller_id, "seller_region": f"{channel.seller_id}-{channel.region}"}


# The channel's status and the freshness checks run in their own job, never inside a sync run (see assets.status).
# What the sync jobs leave out is selected leniently (the group, the checked assets' checks), so a code location or a
# test without the status still builds them; those three assets carry no other check.
_STATUS = dg.AssetSelection.groups("status") | dg.AssetSelection.checks_for_assets(
    *{key.asset_key for check in FRESHNESS_CHECKS for key in check.check_keys}
)

# Backtests (channel x day partitions, their own config) never run inside a channel's sync jobs.
_BACKTEST = dg.AssetSelection.groups("backtest")

_PER_CHANNEL = dg.PartitionedConfig(
    partitions_def=channel_partitions,
    run_config_for_partition_key_fn=lambda _key: {},
    tags_for_partition_key_fn=channel_run_tags,
)

# Every asset of the channel, the Amazon pulls included (fba_inventory, offer_observations, product_fees).
channel_pipeline_job = dg.define_asset_job(
    "channel_pipeline_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("notification_subscriptions") - _STATUS - _BACKTEST,
    config=_PER_CHANNEL,
    description="Validate inputs, reconcile stock, price and write every feed document for one channel.",
)

# Inventory: inputs, order reservations, reconcile, and everything that follows (prices, feeds, push, shipments);
# not the offers pull, which has its own job, nor the fees pull (getMyFeesEstimates, 0.5 requests/s): fees move
# slowly, the full channel run (`channel_pipeline_job`, every Amazon pull) refreshes them, and a stock run prices
# with the fees as they stand.
inventory_job = dg.define_asset_job(
    "inventory_job",
    selection=dg.AssetSelection.assets(
        "master_inventory",
        "channel_mappings",
        "fba_inventory",
        "reservations",
        "shipment_confirmations",
        "pricing_rules",
    ).downstream()
    - dg.AssetSelection.assets("offer_observations", "product_fees")
    - _STATUS
    - _BACKTEST,
    config=_PER_CHANNEL,
    description="Refresh stock for one channel: inputs, FBA figures, open-order reservations, reconcile and push.",
)

# Prices: the offers as observed (notifications imported, no pull), the pricing rules (a small file, validated each
# time so an edit applies to the next reprice) and the Buy Box prices, then the feeds and the push downstream of them.
prices_job = dg.define_asset_job(
    "prices_job",
    selection=dg.AssetSelection.assets("competitor_prices", "pricing_rules").downstream() - _STATUS - _BACKTEST,
    config=_PER_CHANNEL,
    description="Reprice one channel from the offers observed so far, then write and push the price feeds.",
)


def offers_pull_tags(partition_key: str) -> dict[str, str]:
    """The offers pull's tags: `seller`, and `offers_pull` (`<seller_id>-<region>`) instead of `seller_region`, so
    the run queue keeps one pull per seller x region beside (not behind) the seller's sync run."""
    channel = channel_for(partition_key)
    return {"seller": channel.seller_id, "offers_pull": f"{channel.seller_id}-{channel.region}"}


# The budgeted getItemOffersBatch pull alone: it refreshes observations, the next prices run prices them.
offers_pull_job = dg.define_asset_job(
    "offers_pull_job",
    selection=dg.AssetSelection.assets("offer_observations") - _STATUS,
    config=dg.PartitionedConfig(
        partitions_def=channel_partitions,
        run_config_for_partition_key_fn=lambda _key: {},
        tags_for_partition_key_fn=offers_pull_tags,
    ),
    description="Ask Amazon for the offers of the channel's stalest ASINs within the pull's share of the budget.",
)

# The order poll: searchOrders for the partition's seller x region (every marketplace of the seller there) into the
# notification store, and the channel's merged orders. Tagged `seller_region` like the sync runs (it shares their
# SP-API budget); `order_poll_sensor` then requests inventory runs for every channel of a seller whose poll found
# an MFN order change the notifications had not brought.
order_poll_job = dg.define_asset_job(
    "order_poll_job",
    selection=dg.AssetSelection.assets("orders", "order_items"),
    config=_PER_CHANNEL,
    description="Poll Amazon's orders (searchOrders) for the channel's seller and region; merge with notifications.",
)

notification_setup_job = dg.define_asset_job(
    "notification_setup_job",
    selection=dg.AssetSelection.assets("notification_subscriptions"),
    config=_PER_CHANNEL,
    description="Create the seller's SQS queue, SP-API destination and subscriptions for a channel (idempotent).",
)


def channel_status_tags(partition_key: str) -> dict[str, str]:
    """The status run's tags: `seller`, and `channel_status` (the channel) instead of `seller_region`, so the status
    never queues behind the seller's sync run (it reads what that run recorded, and must show it when it hangs)."""
    return {"seller": channel_for(partition_key).seller_id, "channel_status": partition_key}


channel_status_job = dg.define_asset_job(
    "channel_status_job",
    selection=dg.AssetSelection.assets("channel_status") | dg.AssetSelection.checks(*FRESHNESS_CHECKS),
    config=dg.PartitionedConfig(
        partitions_def=channel_partitions,
        run_config_for_partition_key_fn=lambda _key: {},
        tags_for_partition_key_fn=channel_status_tags,
    ),
    description="The channel's status at a glance and the freshness checks of its key assets (reads only).",
)

# A backtest per channel and day: for `dagster job backfill` (a week: one queued run per channel x day). A backfill
# takes no run config, so its runs read the candidate rules file from the run tag `backtest/rules_path`.
price_backtest_job = dg.define_asset_job(
    "price_backtest_job",
    selection=dg.AssetSelection.assets("price_backtest"),
    description="Backtest a candidate rules file against the live rules on one channel's day of offer_observations.",
)
