"""The pricing step alone: the seed's rule (`pricing.buybox.buybox_prices`, the reference) against the rules engine
(`pricing.rules.price_with_rules`) without a rules file and with a realistic one, on one synthetic channel.

The inputs are generated, validated and reconciled once (not timed); then each variant prices every SKU into a
table, `--repeat` times (default 3), alternating, so the machine's load falls on all of them alike. Prints every
run, the median of each variant and its ratio to the seed rule, ending with
`pricing: skus=N seed_s=S none_s=S rules_s=S ratio_none=R ratio_rules=R rules=K`.

The rules file: 36 rules of every scope (2 for every SKU, 12 per brand, 2 for one product type, 20 for single SKUs),
with a fee estimate for every SKU, so each SKU meets 4 to 8 steps.

    uv run python -m bench.pricing --skus 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pricing.buybox import buybox_prices
from pricing.money import install_money_macros
from pricing.rules import price_with_rules
from seller.config import load_channels
from seller.inputs import INPUTS, validated_input
from seller.reconcile import reconcile
from seller.synthetic import generate

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
_BRANDS = ("Acme", "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay")


def rules_file(path: Path) -> None:
    """A realistic rules file for channel us: 36 rules."""
    rows = ["rule_id,channel,scope,scope_value,type,value,priority,active"]
    rows += ["ALL-FLOOR,,all,,floor,5.00,30,true", "ALL-CEIL,us,all,,ceiling,999.00,31,true"]
    for i, brand in enumerate(_BRANDS):
        rows.append(f"{brand}-MARGIN,us,brand,{brand},cost_floor,{5 + i},20,true")
        if i % 2 == 0:
            rows.append(f"{brand}-PROMO,us,brand,{brand},discount_percent,2.5,10,true")
    rows += ["WATCH-SET,,product_type,WATCH,set_price,249.00,5,true", "WATCH-FLOOR,,product_type,WATCH,floor,150,6,"]
    for i in range(20):
        kind = ("set_price,19.99", "match_competitor,1", "ceiling,50.00", "markup_fixed,4.00")[i % 4]
        rows.append(f"SKU-{i}-RULE,us,sku,SKU-{i * 997:07d},{kind},{40 + i},true")
    path.write_text("\n".join(rows) + "\n")


def _prepare(data: Path, skus: int) -> tuple[duckdb.DuckDBPyConnection, object]:
    channels = load_channels()
    channel = channels["us"]
    generate(data, skus, {"us": channel}, now=NOW)
    rules_file(data / "pricing_rules.csv")
    con = duckdb.connect(str(data / "bench.duckdb"))
    install_money_macros(con)
    for name in INPUTS:
        with validated_input(con, name, data, {"us": channel}, channel="us") as loaded:
            assert loaded.errors.num_rows == 0, loaded.errors.to_pylist()[:3]
    reconcile(con, "channel_mappings", "master_inventory", "fba_inventory", allocation=channel.allocation).create(
        "reconciled_inventory"
    )
    con.execute(
        "CREATE TABLE listings AS SELECT r.sku, r.asin, r.fulfillment, m.price AS base_price, c.min_price, "
        "c.max_price, c.shipping, c.undercut_percent, m.cost, m.brand, m.product_type, "
        "NULL::DECIMAL(18,2) AS published_price FROM reconciled_inventory r JOIN master_inventory m USING (sku) "
        "JOIN channel_mappings c USING (sku)"
    )
    con.execute(
        "CREATE TABLE fees AS SELECT sku, CAST(0.15 AS DECIMAL(9,6)) AS referral_rate, "
        "CAST(300 + hash(sku) % 400 AS BIGINT) AS fixed_fee_minor FROM listings"
    )
    return con, channel


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        con, ch = _prepare(Path(tmp), args.skus)
        common = {"seller_id": ch.seller_id, "decimals": ch.decimals, "pricing": ch.pricing, "now": NOW}
        variants = {
            "seed": lambda: buybox_prices(con, "listings", "competitor_prices", **common),
            "none": lambda: price_with_rules(con, "listings", "competitor_prices", None, None, channel="us", **common),
            "rules": lambda: price_with_rules(
                con, "listings", "competitor_prices", "pricing_rules", "fees", channel="us", **common
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for run in range(args.repeat):
            for name, price in variants.items():
                start = time.perf_counter()
                price().create(f"priced_{name}")
                times[name].append(time.perf_counter() - start)
                con.execute(f"DROP TABLE priced_{name}")
                print(f"run {run + 1} {name}: {times[name][-1]:.2f} s", flush=True)
        rules = con.execute("SELECT count(*) FROM pricing_rules").fetchall()[0][0]
        con.close()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"pricing: skus={args.skus} seed_s={median['seed']:.2f} none_s={median['none']:.2f} "
        f"rules_s={median['rules']:.2f} ratio_none={median['none'] / median['seed']:.2f} "
        f"ratio_rules={median['rules'] / median['seed']:.2f} rules={rules}"
    )


if __name__ == "__main__":
    main()
