"""Jobs and schedules over the channel partitions."""

import dagster as dg

from pipelines.partitions import channel_partitions

__all__ = ["channel_pipeline_job", "inventory_job", "prices_job", "notification_setup_job"]

channel_pipeline_job = dg.define_asset_job(
    "channel_pipeline_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("notification_subscriptions"),
    partitions_def=channel_partitions,
    description="Validate inputs, reconcile stock, price and write every feed document for one channel.",
)

# Inventory: inputs, order reservations, reconcile, and everything that follows (prices, feeds, push, shipments).
inventory_job = dg.define_asset_job(
    "inventory_job",
    selection=dg.AssetSelection.assets(
        "master_inventory", "channel_mappings", "fba_inventory", "reservations", "shipment_confirmations"
    ).downstream(),
    partitions_def=channel_partitions,
    description="Refresh stock for one channel: inputs, FBA figures, open-order reservations, reconcile and push.",
)

# Prices: competitor offers and the Buy Box prices, then the feeds and the push downstream of them.
prices_job = dg.define_asset_job(
    "prices_job",
    selection=dg.AssetSelection.assets("competitor_prices").downstream(),
    partitions_def=channel_partitions,
    description="Refresh competitor offers and reprice one channel, then write and push the price feeds.",
)

notification_setup_job = dg.define_asset_job(
    "notification_setup_job",
    selection=dg.AssetSelection.assets("notification_subscriptions"),
    partitions_def=channel_partitions,
    description="Create the seller's SQS queue, SP-API destination and subscriptions for a channel (idempotent).",
)

