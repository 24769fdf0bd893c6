"""One partition per channel (seller x Amazon marketplace), read from the channels config at load time."""

from __future__ import annotations

import dagster as dg

from seller.config import Channel, load_channels

__all__ = ["CHANNELS", "backtest_partitions", "channel_partitions", "channel_for"]

CHANNELS: dict[str, Channel] = load_channels()

channel_partitions = dg.StaticPartitionsDefinition(list(CHANNELS))

# Backtests: channel x day (keys `<channel>|<YYYY-MM-DD>`, the dimensions in alphabetical order), so a week's backfill
# is one run per channel and day.
backtest_partitions = dg.MultiPartitionsDefinition(
    {"channel": channel_partitions, "date": dg.DailyPartitionsDefinition(start_date="2026-01-01")}
)


def channel_for(partition_key: str) -> Channel:
    """The configured channel behind a partition key."""
    return CHANNELS[partition_key]
