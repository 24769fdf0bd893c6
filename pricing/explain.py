"""Dry run: the price and the rule chain of chosen SKUs, from the channel's data as the last run left it; writes
nothing (a read-only connection, and Amazon is not asked). The seed's `calculate`.

    uv run python -m pricing.explain --channel us --sku SKU-0000001 [--sku ...] [--as-of 2026-11-29T10:00:00+00:00]

The data directory is SALES_CHANNEL_DATA (default `data`); when it holds nothing for the channel and `make demo`
left its seller in `.demo/data`, that one is used.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from pricing.channel import price_channel
from resources.warehouse import Warehouse
from seller.config import Channel, data_dir, load_channels

DEMO_DATA = Path(".demo") / "data"

_DETAILS = """
SELECT sku, money_text(price_minor, $d) AS price, money_text(base_minor, $d) AS base,
       money_text(min_minor, $d) AS min, money_text(max_minor, $d) AS max, outcome, rule_chain,
       competitor_seller_id, competitor_fulfillment, money_text(competitor_landed_minor, $d) AS competitor_landed,
       money_text(cost_floor_minor, $d) AS cost_floor, referral_rate, money_text(fixed_fee_minor, $d) AS fixed_fee
FROM explained ORDER BY sku
"""


def explain(warehouse: Warehouse, channel: Channel, skus: list[str], now: datetime) -> list[dict]:
    """The priced rows of `skus` (those the channel maps), as text."""
    with warehouse.connect(channel.name, read_only=True) as con:
        con.register("explain_skus", pa.table({"sku": pa.array(skus, pa.string())}))
        con.register("explained", price_channel(con, channel, now, only="explain_skus"))  # temp: nothing stored
        return con.sql(_DETAILS, params={"d": channel.decimals}).to_arrow_table().to_pylist()


def _describe(row: dict, currency: str) -> str:
    lines = [
        f"{row['sku']}: {row['price']} {currency} ({row['outcome']}; master {row['base']}, "
        f"floor {row['min']}, ceiling {row['max']})",
        f"  chain: {row['rule_chain'] or '(no rule applied)'}",
    ]
    if row["competitor_seller_id"]:
        lines.append(
            f"  competitor: {row['competitor_seller_id']} ({row['competitor_fulfillment']}), "
            f"landed {row['competitor_landed']}"
        )
    if row["cost_floor"] is not None:
        lines.append(f"  cost floor: {row['cost_floor']}")
    if row["referral_rate"] is not None:
        lines.append(f"  fees: referral {row['referral_rate'] * 100:.2f} %, fixed {row['fixed_fee']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--sku", action="append", required=True, help="repeat for several SKUs")
    parser.add_argument("--as-of", help="price as if it were this ISO 8601 instant (default: now)")
    args = parser.parse_args(argv)
    channels = load_channels()
    if args.channel not in channels:
        parser.error(f"unknown channel {args.channel!r} (configured: {', '.join(channels)})")
    channel = channels[args.channel]
    now = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        parser.error("--as-of needs a UTC offset, e.g. 2026-11-29T10:00:00+00:00")
    data = data_dir()
    warehouse = Warehouse(data_dir=str(data))
    if not warehouse.has_data(channel.name) and Warehouse(data_dir=str(DEMO_DATA)).has_data(channel.name):
        print(f"(no data for {channel.name} in {data}: using the demo seller in {DEMO_DATA})", file=sys.stderr)
        warehouse = Warehouse(data_dir=str(DEMO_DATA))
    if not warehouse.has_data(channel.name):
        print(f"no data for channel {channel.name} in {warehouse.data_dir}: run the pipeline first", file=sys.stderr)
        return 1
    rows = explain(warehouse, channel, args.sku, now)
    print(f"channel {channel.name} ({channel.currency}), priced as of {now.isoformat()}; nothing written")
    for row in rows:
        print(_describe(row, channel.currency))
    found = {row["sku"] for row in rows}
    for sku in args.sku:
        if sku not in found:
            print(f"{sku}: not priced on {channel.name} (not mapped, no ASIN, or not in the master)")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
