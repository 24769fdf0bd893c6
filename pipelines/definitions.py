"""The code location: every asset of the channel pipeline, partitioned by channel, with its resources and jobs.

uv run dagster asset materialize -m pipelines.definitions --select '*' --partition us
"""

from __future__ import annotations

import dagster as dg

from assets.feed_files import feed_assets
from assets.history import sync_history
from assets.inputs import input_assets
from assets.inventory import reconciled_inventory
from assets.prices import buybox_prices
from assets.publish import listings_submission
from pipelines.jobs import channel_pipeline_job, channel_pipeline_schedule
from pipelines.resources import resources

ALL_ASSETS = [*input_assets, reconciled_inventory, buybox_prices, *feed_assets, sync_history, listings_submission]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[channel_pipeline_job],
    schedules=[channel_pipeline_schedule],
    resources=resources(),
    # Steps of one channel share that channel's DuckDB file (one writer at a time), and DuckDB already uses every
    # core inside a step, so steps run in the run's own process, one after another.
    executor=dg.in_process_executor,
)
