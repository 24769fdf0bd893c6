"""One partition per channel (seller x Amazon marketplace), read from the channels config at load time."""

from __future__ import annotations

import dagster as dg

from seller.config import Channel, load_channels

__all__ = ["CHANNELS", "channel_partitions", "channel_for"]

CHANNELS: dict[str, Channel] = load_channels()

channel_partitions = dg.StaticPartitionsDefinition(list(CHANNELS))


def channel_for(partition_key: str) -> Channel:
    """The configured channel behind a partition key."""
    return CHANNELS[partition_key]
