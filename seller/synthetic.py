"""A synthetic seller, seeded and deterministic: the data directory `make demo`, the emulator and the benchmarks use.

It writes the seller-input contract (see README, "Data contract"): `master_inventory`, `channel_mappings`,
`competitor_prices` and `fba_inventory`, for every channel of a channels config. The mix is meant to look like a
real catalogue: ~40 % FBA, ~2 % of SKUs unmapped per channel, ~0.5 % in a gated product type (`WATCH`), 0–6
competitor offers per ASIN of which some are stale and some are the seller's own, and a few SKUs whose floor is above
what the undercut would ask. Generation is vectorised (numpy + DuckDB), so a million SKUs take seconds.

    uv run python -m seller.synthetic --skus 5000 --out data
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from seller.config import Channel, load_channels

__all__ = ["GATED_PRODUCT_TYPE", "generate"]

GATED_PRODUCT_TYPE = "WATCH"
_BRANDS = np.array(["Acme", "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"])
_NOUNS = np.array(["Kettle", "Lamp", "Backpack", "Headphones", "Mug", "Charger", "Blender", "Notebook", "Watch"])
_ASIN_CHARS = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def generate(
    out_dir: str | Path,
    skus: int = 5000,
    channels: dict[str, Channel] | None = None,
    seed: int = 7,
    fmt: str = "csv",
    now: datetime | None = None,
) -> dict[str, int]:
    """Write a synthetic seller into `out_dir`; returns the row count of each file written."""
    channels = channels if channels is not None else load_channels()
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    n = skus
    idx = np.arange(n)
    sku = np.char.add("SKU-", np.char.zfill(idx.astype(str), 7))
    price_cents = rng.integers(500, 20_000, n)
    gated = rng.random(n) < 0.005
    master = pd.DataFrame(
        {
            "sku": sku,
            "quantity": rng.integers(0, 250, n),
            "price_cents": price_cents,
            "cost_cents": (price_cents * rng.uniform(0.35, 0.7, n)).astype(np.int64),
            "handling_time_days": rng.integers(1, 4, n),
            "product_id": rng.integers(10**11, 10**12, n).astype(str),
            "brand": _BRANDS[rng.integers(0, len(_BRANDS), n)],
            "noun": np.where(gated, "Watch", _NOUNS[rng.integers(0, len(_NOUNS) - 1, n)]),
            "product_type": np.where(gated, GATED_PRODUCT_TYPE, "PRODUCT"),
        }
    )
    asin = _asins(rng, n)
    fba = rng.random(n) < 0.4

    mappings, offers, fba_rows = [], [], []
    for channel in channels.values():
        scale = 10 ** (2 - channel.decimals)  # JPY: whole yen, prices x100 so they look like yen
        mapped = rng.random(n) >= 0.02
        base = price_cents // scale
        min_price = base * 80 // 100
        max_price = base * 150 // 100
        shipping = np.where(fba, 0, rng.choice([0, 0, 299, 499], n) // scale)
        undercut = np.where(rng.random(n) < 0.03, "2", "")
        mappings.append(
            pd.DataFrame(
                {
                    "channel": channel.name,
                    "sku": sku,
                    "asin": asin,  # the same ASIN in every marketplace
                    "fulfillment": np.where(fba, "FBA", "FBM"),
                    "min_cents": min_price,
                    "max_cents": max_price,
                    "ship_cents": shipping,
                    "undercut_percent": undercut,
                    "decimals": channel.decimals,
                }
            )[mapped]
        )
        fba_rows.append(
            pd.DataFrame({"channel": channel.name, "sku": sku, "fulfillable_quantity": rng.integers(0, 400, n)})[
                fba & mapped
            ]
        )
        # 0–6 offers per ASIN around our base price; ~3 % far below it, so the floor clamp shows.
        counts = rng.integers(0, 7, n)
        total = int(counts.sum())
        owner = np.repeat(idx, counts)
        rel = np.where(rng.random(total) < 0.03, rng.uniform(0.6, 0.8, total), rng.uniform(0.9, 1.25, total))
        own = rng.random(total) < 0.08
        stale = rng.random(total) < 0.15
        age_s = np.where(stale, rng.integers(25 * 3600, 96 * 3600, total), rng.integers(60, 6 * 3600, total))
        offers.append(
            pd.DataFrame(
                {
                    "channel": channel.name,
                    "asin": asin[owner],
                    "seller_id": np.where(own, channel.seller_id, _competitor_ids(rng, total)),
                    "price_cents": (base[owner] * rel).astype(np.int64),
                    "ship_cents": rng.choice([0, 0, 0, 399], total) // scale,
                    "fulfillment": np.where(rng.random(total) < 0.5, "FBA", "FBM"),
                    "age_s": age_s,
                    "decimals": channel.decimals,
                }
            )
        )

    con = duckdb.connect()
    con.register("m", master)
    con.register("cm", pd.concat(mappings, ignore_index=True))
    con.register("cp", pd.concat(offers, ignore_index=True))
    con.register("fi", pd.concat(fba_rows, ignore_index=True))
    con.execute(
        "CREATE MACRO money(c, d) AS CASE WHEN d = 0 THEN c::VARCHAR ELSE printf('%d.%02d', c // 100, c % 100) END"
    )
    queries = {
        "master_inventory": """
            SELECT sku, quantity, money(price_cents, 2) AS price, money(cost_cents, 2) AS cost,
                   handling_time_days, product_id, 'UPC' AS product_id_type, brand,
                   brand || ' ' || noun || ' ' || right(sku, 5) AS title, product_type
            FROM m ORDER BY sku""",
        "channel_mappings": """
            SELECT channel, sku, asin, fulfillment, money(min_cents, decimals) AS min_price,
                   money(max_cents, decimals) AS max_price, money(ship_cents, decimals) AS shipping, undercut_percent
            FROM cm ORDER BY channel, sku""",
        "competitor_prices": f"""
            SELECT channel, asin, seller_id, money(price_cents, decimals) AS price,
                   money(ship_cents, decimals) AS shipping, fulfillment,
                   strftime(TIMESTAMPTZ '{now.isoformat()}' - to_seconds(age_s), '%Y-%m-%dT%H:%M:%S+00:00')
                       AS observed_at
            FROM cp ORDER BY channel, asin, seller_id""",
        "fba_inventory": "SELECT channel, sku, fulfillable_quantity FROM fi ORDER BY channel, sku",
    }
    counts: dict[str, int] = {}
    for name, sql in queries.items():
        for stale_file in out.glob(f"{name}.*"):
            stale_file.unlink()
        target = out / f"{name}.{fmt}"
        options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
        con.execute(f"COPY ({sql}) TO '{target}' ({options})")
        counts[name] = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
    con.close()
    return counts


def _asins(rng: np.random.Generator, n: int) -> np.ndarray:
    # Amazon ASINs: "B0" + 8 upper-case alphanumerics; unique per SKU here.
    body = _ASIN_CHARS[rng.integers(0, len(_ASIN_CHARS), (n, 8))]
    asins = np.char.add("B0", np.ascontiguousarray(body).view("<U8").ravel())
    _, first = np.unique(asins, return_index=True)
    if len(first) != n:  # a collision: make it unique deterministically
        asins = np.char.add("B", np.char.zfill(np.arange(n).astype(str), 9))
    return asins


def _competitor_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    pool = np.array([f"A{i:03d}COMPETITOR{i % 10}" for i in range(40)])
    return pool[rng.integers(0, len(pool), n)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--out", default="data")
    parser.add_argument("--channels", help="channels file (default: SALES_CHANNEL_CONFIG or channels.yaml)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    args = parser.parse_args(argv)
    counts = generate(args.out, args.skus, load_channels(args.channels), args.seed, args.format)
    for name, rows in counts.items():
        print(f"{name}: {rows} rows")


if __name__ == "__main__":
    main()
