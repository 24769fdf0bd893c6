"""A simulated day of competitor offers for the demo seller, so `price_backtest` has a market to replay.

`make demo` leaves each channel with the offers of one moment. This command adds, for each channel, two seeded days of
hourly observations (the day before yesterday, UTC, for the suppression's 24-hour reference, and yesterday, the day to
backtest) to the channel's `offer_observations`, as the offers pull would have recorded them (source `pull`, one
snapshot per ASIN and hour): every competitor of `competitor_prices` keeps its seller, fulfillment and shipping and
follows a seeded strategy from its current price — `static` (half of them), `random_walk` (hourly steps of about 1 %,
within ±30 %) or `undercut_bot` (1 % lower every hour, back to its start every 12 hours) — with a seeded feedback
rating (one in ten without); our own offer stands at its current Buy Box price. It also writes a sample candidate
rules file (a 10 % profit floor) and prints the `dagster asset materialize` command that backtests it.

    make demo && uv run python -m pipelines.backtest_demo [--channel us] [--seed 7] [--run]

Everything is seeded: the same demo data gives the same day. Demo only: the real pipeline never invents offers.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
HOURS = 48
CANDIDATE_RULES = (
    "rule_id,channel,scope,scope_value,type,value,priority,active\nprofit_floor,,all,,cost_floor,10,10,true\n"
)

_CURRENT = """
SELECT * FROM (
    SELECT asin, seller_id, to_minor(price, $decimals) AS price_minor, to_minor(shipping, $decimals) AS ship_minor,
           fulfillment
    FROM competitor_prices WHERE asin IN (SELECT asin FROM channel_mappings WHERE asin IS NOT NULL)
    UNION ALL
    SELECT asin, $seller_id, price_minor, ship_minor, fulfillment FROM buybox_prices WHERE asin IS NOT NULL
)
QUALIFY row_number() OVER (PARTITION BY asin, seller_id ORDER BY price_minor) = 1
ORDER BY asin, seller_id
"""


def _money(minor: np.ndarray, decimals: int) -> list[str]:
    if decimals == 0:
        return [str(v) for v in minor]
    return [f"{v // 100}.{v % 100:02d}" for v in minor]


def simulate(current: pa.Table, seller_id: str, decimals: int, first_hour: datetime, seed: int) -> tuple[pa.Table, ...]:
    """Hourly observations (OBSERVATION_SCHEMA) and snapshots (SNAPSHOT_SCHEMA) of the offers in `current` (asin,
    seller_id, price_minor, ship_minor, fulfillment) for HOURS hours from `first_hour`."""
    from sync.offers import OBSERVATION_SCHEMA, SNAPSHOT_SCHEMA

    rng = np.random.default_rng(seed)
    n = current.num_rows
    start = current.column("price_minor").to_numpy().astype(np.int64)
    ours = np.array(current.column("seller_id").to_pylist()) == seller_id
    strategy = np.where(ours, 0, rng.choice([0, 1, 2], size=n, p=[0.5, 0.3, 0.2]))  # static, random_walk, undercut
    steps = np.clip(np.cumprod(1 + rng.normal(0, 0.01, (HOURS, n)), axis=0), 0.7, 1.3)
    undercut = 1 - 0.01 * (np.arange(HOURS)[:, None] % 12)
    factor = np.where(strategy == 1, steps, np.where(strategy == 2, undercut, 1.0))
    prices = np.maximum(np.round(start * factor).astype(np.int64), 1)  # hours x offers
    rating = np.round(rng.uniform(60, 100, n), 1)
    rated = (rng.random(n) >= 0.1) & ~ours
    minutes = rng.integers(0, 60, (HOURS, n))
    hours = np.repeat(np.arange(HOURS), n)
    observed = [
        first_hour + timedelta(hours=int(h), minutes=int(m)) for h, m in zip(hours, minutes.ravel(), strict=True)
    ]
    tile = np.tile(np.arange(n), HOURS)
    asins = np.array(current.column("asin").to_pylist())
    fba = np.array(current.column("fulfillment").to_pylist()) == "FBA"
    observations = pa.table(
        {
            "asin": asins[tile],
            "seller_id": np.array(current.column("seller_id").to_pylist())[tile],
            "observed_at": pa.array(observed, pa.timestamp("us", tz="UTC")),
            "price": _money(prices.ravel(), decimals),
            "shipping": _money(current.column("ship_minor").to_numpy().astype(np.int64)[tile], decimals),
            "fulfillment": np.where(fba, "FBA", "FBM")[tile],
            "is_featured_merchant": pa.nulls(len(tile), pa.bool_()),
            "is_buybox_winner": pa.nulls(len(tile), pa.bool_()),
            "feedback_rating": pa.array(
                [f"{r:.1f}" if ok else None for r, ok in zip(rating[tile], rated[tile], strict=True)]
            ),
            "feedback_count": pa.nulls(len(tile), pa.int64()),
            "is_prime": pa.array(fba[tile]),
        }
    ).cast(OBSERVATION_SCHEMA)
    # One snapshot per ASIN and hour, at its first observation of the hour (the pull asks for a whole ASIN at once).
    first = observations.group_by(["asin"]).aggregate([]).column("asin")
    snapshot_times = [first_hour + timedelta(hours=h) for h in range(HOURS)]
    snapshots = pa.table(
        {
            "asin": np.repeat(np.array(first.to_pylist()), HOURS),
            "observed_at": pa.array(snapshot_times * len(first), pa.timestamp("us", tz="UTC")),
            "status": ["ok"] * (len(first) * HOURS),
        }
    )
    snapshots = pa.table(
        {
            name: snapshots.column(name) if name in snapshots.column_names else pa.nulls(snapshots.num_rows, field.type)
            for name, field in zip(SNAPSHOT_SCHEMA.names, SNAPSHOT_SCHEMA, strict=True)
        }
    ).cast(SNAPSHOT_SCHEMA)
    return observations, snapshots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("SALES_CHANNEL_DATA") or str(DEMO / "data"))
    parser.add_argument("--channel", action="append", help="channel(s) to simulate (default: every channel)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run", action="store_true", help="then run the backtest of the first channel (CLI)")
    args = parser.parse_args(argv)
    data = Path(args.data).resolve()
    os.environ["SALES_CHANNEL_DATA"] = str(data)

    from resources.warehouse import Warehouse, channel_tables
    from seller.config import load_channels
    from sync import offers

    channels = load_channels()
    names = args.channel or list(channels)
    day = datetime.now(UTC).date() - timedelta(days=1)
    first_hour = datetime.combine(day - timedelta(days=1), time(), tzinfo=UTC)
    warehouse = Warehouse(data_dir=str(data))
    for number, name in enumerate(names):
        channel = channels[name]
        if not warehouse.database_path(name).exists():
            print(f"{name}: no channel data in {data} (run `make demo` first)")
            return 1
        with warehouse.connect(name) as con:
            missing = {"competitor_prices", "buybox_prices", "channel_mappings"} - channel_tables(con)
            if missing:
                print(f"{name}: missing {sorted(missing)} (run `make demo` first)")
                return 1
            params = {"decimals": channel.decimals, "seller_id": channel.seller_id}
            current = con.sql(_CURRENT, params=params).to_arrow_table()
            observed, snapshots = simulate(current, channel.seller_id, channel.decimals, first_hour, args.seed + number)
            offers.ensure_tables(con)
            added, _ = offers.append(
                con, "pull", observed, snapshots, datetime.now(UTC), channel.pricing.observation_retention_days
            )
        print(f"{name}: {added:,} observations of {current.num_rows:,} offers, hourly from {first_hour:%Y-%m-%d %H:%M}")
    rules = data / "backtest" / "candidate_rules.csv"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(CANDIDATE_RULES)
    config = json.dumps({"ops": {"price_backtest": {"config": {"rules_path": str(rules)}}}})
    command = [
        "uv", "run", "--frozen", "dagster", "asset", "materialize", "-m", "pipelines.definitions",
        "--select", "price_backtest", "--partition", f"{names[0]}|{day}", "--config-json", config,
    ]  # fmt: skip
    print(f"candidate rules: {rules}")
    print("backtest (CLI):\n  " + f"SALES_CHANNEL_DATA={shlex.quote(str(data))} " + shlex.join(command))
    if not args.run:
        return 0
    runner = [sys.executable, "-m", "dagster", *command[command.index("dagster") + 1 :]]  # this interpreter's dagster
    return subprocess.run(runner, cwd=ROOT, env=os.environ.copy(), check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
