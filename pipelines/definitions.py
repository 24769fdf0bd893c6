"""The code location: every asset of the channel pipeline, partitioned by channel, with its resources and jobs.

uv run dagster asset materialize -m pipelines.definitions --select '* and not group:backtest' --partition us
"""

from __future__ import annotations

import dagster as dg

from assets.archive import feed_archive
from assets.backtest import price_backtest
from assets.external import external_assets
from assets.feed_files import feed_assets
from assets.fees import product_fees
from assets.history import sync_history
from assets.inputs import input_assets
from assets.inventory import reconciled_inventory
from assets.listings import create_listing_job
from assets.notifications import notification_subscriptions
from assets.offers import offer_observations
from assets.order_poll import order_assets
from assets.orders import reservations
from assets.prices import buybox_prices
from assets.publish import listings_submission
from assets.shipments import shipment_confirmations
from assets.status import FRESHNESS_CHECKS, channel_status
from pipelines.enablement import enable_channel
from pipelines.jobs import (
    channel_pipeline_job,
    channel_status_job,
    inventory_job,
    notification_setup_job,
    offers_pull_job,
    order_poll_job,
    price_backtest_job,
    prices_job,
)
from pipelines.maintenance import lake_maintenance_job, lake_maintenance_schedule
from pipelines.resources import resources
from pipelines.schedules import SCHEDULES
from pipelines.sensors import SENSORS

ALL_ASSETS = [*input_assets, offer_observations, reconciled_inventory, buybox_prices, *feed_assets, sync_history]
ALL_ASSETS += [listings_submission, order_assets, reservations, shipment_confirmations, feed_archive, *external_assets]
ALL_ASSETS += [product_fees]

defs = dg.Definitions(
    assets=[*ALL_ASSETS, notification_subscriptions, channel_status, price_backtest],
    asset_checks=FRESHNESS_CHECKS,
    jobs=[
        enable_channel,
        create_listing_job,
        channel_pipeline_job,
        inventory_job,
        prices_job,
        offers_pull_job,
        order_poll_job,
        notification_setup_job,
        channel_status_job,
        lake_maintenance_job,
        price_backtest_job,
    ],
    schedules=[*SCHEDULES, lake_maintenance_schedule],
    sensors=SENSORS,
    resources=resources(),
    # Steps of one channel share that channel's DuckDB file (one writer at a time), and DuckDB already uses every
    # core inside a step, so steps run in the run's own process, one after another.
    executor=dg.in_process_executor,
)
