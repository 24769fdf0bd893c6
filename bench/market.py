"""Market benchmark: Buy Box share and profit of our repricing strategies in the emulator's market model.

One seeded market of `--asins` ASINs (default 1,000), each with our offer and 1-5 competitors of the model's
strategies (static, match_lowest, undercut_bot, stay_above, random_walk; `emulator.market_model`), played for
`--hours` simulated hours (default 24) once per strategy of ours, from the same seed, so every strategy meets the same
competitors, the same random-walk draws and the same orders (Poisson per ASIN and hour); what differs is how the
competitors react to our prices and who wins each order:
- `seed`: the seed's match_competitor rule, 0.5 % under the lowest competitor landed price (`pricing.buybox`), clamped
  to the seller's [min_price, max_price];
- `amazon_like`: match the Buy Box (featured offer) landed price, as Amazon's Automate Pricing competitive rule; no
  competitor holding it (ours, or suppressed): keep the price Amazon has (`pricing.buybox` on the featured offer only,
  no undercut);
- `ours`: the rules file the project ships as its recommended default (`pricing/recommended_rules.csv`, through
  `pricing.rules.price_with_rules` with the recommended `pricing:` settings below and the fee model's fees).

Decision: the bench steps the emulator's own market model in process on a simulated clock (no HTTP, no wall-clock
waits), so a simulated day of 1,000 ASINs runs in well under a minute per strategy on a fresh clone; `spapi-emulator
--market` runs the same model against the emulator's clock. Our repricer looks at the market every `--reprice-minutes`
(default 5) simulated minutes: it sees every in-stock offer as it stands (observed now), prices all ASINs in one DuckDB
statement with the project's pricing code, and every price that differs from the published one is sent and accepted
at once (a real push takes seconds by patch, minutes by feed: the model is kind to every strategy alike there).

Printed per strategy: Buy Box share (time held, weighted by each ASIN's demand), profit (price − cost − fees of the
emulator's fee model, in the currency), units, price changes sent, orders lost to suppression, and against each
undercut_bot (the ASINs that have one) how low our price went: the lowest price as a share of the break-even price
(the lowest price with profit ≥ 0) and how many ASINs it went below break-even. Last line:
`market: ours_share=S ours_profit=P seed_share=S0 seed_profit=P0 amazon_share=S1 amazon_profit=P1`.

    uv run python -m bench.market [--asins 1000] [--hours 24] [--seed 7] [--reprice-minutes 5] [--details FILE]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd

from emulator.market_model import MarketModel, Offer, fee_parts, fees_minor
from pricing.buybox import buybox_prices
from pricing.guards import hold_large_changes
from pricing.money import install_money_macros
from seller.config import Pricing

STRATEGIES = ("seed", "amazon_like", "ours")
OUR_SELLER = "A3DEMOSELLER01"
START = datetime(2025, 3, 3, tzinfo=UTC).timestamp()
RULES_FILE = Path(__file__).resolve().parent.parent / "pricing" / "recommended_rules.csv"
# The channel `pricing:` settings that go with the recommended rules file (README, "Recommended rules").
RECOMMENDED_PRICING = {"undercut_percent": Decimal(0), "below_floor": "floor", "max_change_percent": Decimal(20)}

_PRODUCT_TYPES = (("HOME", 40), ("TOYS", 20), ("ELECTRONICS", 20), ("BOOK", 20))
_SIZE_TIERS = (("small_standard", 60), ("large_standard", 35), ("large_bulky", 5))
_COMPETITOR_STRATEGIES = (
    ("static", 25),
    ("match_lowest", 20),
    ("undercut_bot", 15),
    ("stay_above", 10),
    ("random_walk", 30),
)
_RATINGS = ((97, 40), (90, 35), (80, 15), (65, 10))


def _pick(rng: random.Random, weighted: tuple[tuple[object, int], ...]) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


@dataclass
class Item:
    """One ASIN of the seller: our listing (the master and mapping figures) and its market."""

    asin: str
    sku: str
    product_type: str
    size_tier: str
    fba: bool
    shipping_minor: int
    cost_minor: int
    base_minor: int  # the master price
    min_minor: int  # the seller's hard limits (the mapping's min_price / max_price)
    max_minor: int
    demand_per_hour: float
    competitors: list[Offer] = field(default_factory=list)

    @property
    def break_even_minor(self) -> int:
        """The lowest price whose profit (price − cost − fees) is not negative."""
        rate, fixed = fee_parts(self.product_type, self.fba, self.size_tier)
        price = max(1, math.ceil((self.cost_minor + fixed) * 10_000 / (10_000 - rate)) - 2)
        while price - self.cost_minor - fees_minor(price, self.product_type, self.fba, self.size_tier) < 0:
            price += 1
        return price


def build_world(seed: int, asins: int) -> list[Item]:
    """The seeded catalogue and its competitors (prices in USD cents)."""
    rng = random.Random(f"{seed}/world")
    items = []
    for n in range(asins):
        product_type = str(_pick(rng, _PRODUCT_TYPES))
        size_tier = str(_pick(rng, _SIZE_TIERS))
        fba = rng.random() < 0.65
        shipping = 0 if fba or rng.random() < 0.7 else 399
        cost = int(math.exp(rng.uniform(math.log(500), math.log(6000))))
        item = Item(
            asin=f"B0MKT{n:05d}",
            sku=f"MKT-{n:05d}",
            product_type=product_type,
            size_tier=size_tier,
            fba=fba,
            shipping_minor=shipping,
            cost_minor=cost,
            base_minor=0,
            min_minor=0,
            max_minor=0,
            demand_per_hour=math.exp(rng.uniform(math.log(0.05), math.log(2.0))),
        )
        item.base_minor = int(item.break_even_minor * rng.uniform(1.2, 1.6))
        item.max_minor = int(item.base_minor * 1.3)
        # The seller's own floor, set from cost without Amazon's fees (a common mistake): often below break-even.
        item.min_minor = int(cost * rng.uniform(1.05, 1.35))
        level = item.base_minor * rng.uniform(0.85, 1.1)  # where the market's prices sit
        for c in range(rng.choice((1, 2, 2, 3, 3, 4, 5))):
            strategy = str(_pick(rng, _COMPETITOR_STRATEGIES))
            c_fba = rng.random() < 0.5
            c_ship = 0 if c_fba or rng.random() < 0.5 else rng.choice((399, 499, 599))
            price = int(level * rng.uniform(0.92, 1.15)) - c_ship
            offer = Offer(
                seller_id=f"A{c}COMP{n:05d}XX",
                price_minor=price,
                shipping_minor=c_ship,
                fba=c_fba,
                feedback_rating=int(_pick(rng, _RATINGS)),
                quantity=0 if rng.random() < 0.05 else 50,
                strategy=strategy,
                floor_minor=price,
                ceiling_minor=price,
            )
            if strategy == "match_lowest":
                offer.floor_minor = int(level * rng.uniform(0.75, 0.9))
                offer.ceiling_minor = int(level * 1.3)
                offer.interval_s = 60.0 * rng.choice((10, 15, 30, 60))
            elif strategy == "undercut_bot":
                offer.floor_minor = int(level * rng.uniform(0.55, 0.85))
                offer.ceiling_minor = int(level * rng.uniform(1.1, 1.3))
                offer.step_minor = max(1, int(level * rng.choice((0.002, 0.005, 0.01))))
                offer.interval_s = 60.0 * rng.choice((5, 10, 15, 30))
            elif strategy == "stay_above":
                offer.floor_minor = int(level * rng.uniform(0.95, 1.05))
                offer.ceiling_minor = int(level * 1.3)
                offer.step_minor = max(1, int(level * 0.01))
                offer.interval_s = 60.0 * rng.choice((30, 60))
            elif strategy == "random_walk":
                offer.floor_minor = int(level * 0.8)
                offer.ceiling_minor = int(level * 1.25)
                offer.step_minor = 300
                offer.interval_s = 60.0 * rng.choice((30, 60, 120))
            offer.price_minor = max(offer.floor_minor, min(offer.ceiling_minor, offer.price_minor))
            item.competitors.append(offer)
        items.append(item)
    return items


@dataclass
class Result:
    strategy: str
    share: float
    profit_minor: int
    units: int
    changes: int
    lost: int
    bot_asins: int
    bot_below_break_even: int
    bot_lowest_ratio_min: float | None
    bot_lowest_ratio_median: float | None
    below_profit_floor: int | None  # ours only: ASINs priced below the rules' cost floor at any time
    seconds: float
    details: list[dict[str, object]] = field(default_factory=list)


_LISTINGS = """
SELECT sku, asin, fulfillment, from_minor(base_minor, 2) AS base_price, from_minor(min_minor, 2) AS min_price,
       from_minor(max_minor, 2) AS max_price, from_minor(shipping_minor, 2) AS shipping,
       CAST(NULL AS DECIMAL(9,4)) AS undercut_percent, from_minor(cost_minor, 2) AS cost,
       CAST(NULL AS VARCHAR) AS brand, product_type,
       from_minor(published_minor, 2) AS published_price
FROM listings_raw
"""
_RULES = """
SELECT rule_id, channel, scope, scope_value, type, CAST(value AS DECIMAL(18,4)) AS value, priority, active
FROM read_csv($path, header = true, all_varchar = false, columns = {
    'rule_id': 'VARCHAR', 'channel': 'VARCHAR', 'scope': 'VARCHAR', 'scope_value': 'VARCHAR', 'type': 'VARCHAR',
    'value': 'VARCHAR', 'priority': 'INTEGER', 'active': 'BOOLEAN'})
"""
_OFFERS = """
SELECT asin, seller_id, from_minor(price_minor, 2) AS price, from_minor(shipping_minor, 2) AS shipping, fulfillment,
       CAST($now AS TIMESTAMPTZ) AS observed_at, is_featured_merchant, CAST(feedback_rating AS DECIMAL(5,2))
       AS feedback_rating, feedback_count
FROM offers_raw
"""


class Repricer:
    """One strategy of ours over a DuckDB connection: the market's offers in, a price per SKU out."""

    def __init__(self, strategy: str, items: list[Item]) -> None:
        self.strategy = strategy
        self.con = duckdb.connect()
        install_money_macros(self.con)
        self.items = items
        self.cost_floor: dict[str, int] = {}
        if strategy == "ours":
            self.con.execute(f"CREATE TEMP TABLE ours_rules AS {_RULES}", {"path": str(RULES_FILE)})
            parts = [fee_parts(i.product_type, i.fba, i.size_tier) for i in items]
            self.con.register(
                "fee_parts",
                pd.DataFrame(
                    {
                        "sku": [i.sku for i in items],
                        "referral_e4": [rate for rate, _ in parts],
                        "fixed_fee_minor": [fixed for _, fixed in parts],
                    }
                ),
            )
            self.con.execute(
                "CREATE TEMP TABLE ours_fees AS SELECT sku, CAST(referral_e4 / 10000 AS DECIMAL(9,6)) "
                "AS referral_rate, fixed_fee_minor FROM fee_parts"
            )

    def price(self, model: MarketModel, published: dict[str, int], now: float) -> dict[str, int]:
        listings_raw = pd.DataFrame(
            {
                "sku": [i.sku for i in self.items],
                "asin": [i.asin for i in self.items],
                "fulfillment": ["FBA" if i.fba else "FBM" for i in self.items],
                # amazon_like holds the price Amazon has when there is no competitor Buy Box to match
                "base_minor": [
                    published[i.asin] if self.strategy == "amazon_like" else i.base_minor for i in self.items
                ],
                "min_minor": [i.min_minor for i in self.items],
                "max_minor": [i.max_minor for i in self.items],
                "shipping_minor": [i.shipping_minor for i in self.items],
                "cost_minor": [i.cost_minor for i in self.items],
                "product_type": [i.product_type for i in self.items],
                "published_minor": [published[i.asin] for i in self.items],
            }
        )
        rows = []
        for item in self.items:
            winner = model.winner(item.asin)
            for offer in model.markets[item.asin].offers:
                if offer.seller_id == OUR_SELLER or offer.quantity <= 0:
                    continue  # Amazon lists only offers in stock
                if self.strategy == "amazon_like" and offer is not winner:
                    continue  # it answers the featured offer only
                rows.append(
                    (
                        item.asin,
                        offer.seller_id,
                        offer.price_minor,
                        offer.shipping_minor,
                        "FBA" if offer.fba else "FBM",
                        offer.feedback_rating is None or offer.feedback_rating >= 70,
                        offer.feedback_rating,
                        1000,
                    )
                )
        offers_raw = pd.DataFrame(
            rows,
            columns=[
                "asin",
                "seller_id",
                "price_minor",
                "shipping_minor",
                "fulfillment",
                "is_featured_merchant",
                "feedback_rating",
                "feedback_count",
            ],
        )
        self.con.register("listings_raw", listings_raw)
        self.con.register("offers_raw", offers_raw)
        at = datetime.fromtimestamp(now, UTC)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW listings AS {_LISTINGS}")
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE offers AS {_OFFERS}", {"now": at.isoformat()})
        if self.strategy == "ours":
            priced = self._ours(at)
        else:
            undercut = Decimal("0.5") if self.strategy == "seed" else Decimal(0)
            priced = buybox_prices(
                self.con,
                "listings",
                "offers",
                seller_id=OUR_SELLER,
                decimals=2,
                pricing=Pricing(undercut_percent=undercut),
                now=at,
            )
        return {asin: int(price) for asin, price in priced.select("asin, price_minor").fetchall()}

    def _ours(self, at: datetime) -> duckdb.DuckDBPyRelation:
        from pricing.rules import price_with_rules

        pricing = Pricing(**RECOMMENDED_PRICING)
        priced = price_with_rules(
            self.con,
            "listings",
            "offers",
            "ours_rules",
            "ours_fees",
            seller_id=OUR_SELLER,
            channel="us",
            decimals=2,
            pricing=pricing,
            now=at,
        )
        self.con.register("ours_unguarded", priced)
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW ours_published AS SELECT sku, published_minor AS price_minor FROM listings_raw"
        )
        guarded = hold_large_changes(self.con, "ours_unguarded", "ours_published", pricing=pricing, decimals=2)
        self.con.register("ours_priced", guarded.select("asin, price_minor, cost_floor_minor"))
        for asin, floor in self.con.execute("SELECT asin, cost_floor_minor FROM ours_priced").fetchall():
            if floor is not None:
                self.cost_floor[asin] = int(floor)
        return self.con.sql("SELECT asin, price_minor FROM ours_priced")


def run(items: list[Item], strategy: str, seed: int, hours: float, reprice_minutes: float) -> Result:
    started = time.perf_counter()
    model = MarketModel(seed, START)
    published = {}
    for item in items:
        ours = Offer(
            OUR_SELLER,
            item.base_minor,
            item.shipping_minor,
            item.fba,
            98,
            quantity=1_000_000,  # stock is not this benchmark's subject
            cost_minor=item.cost_minor,
            product_type=item.product_type,
            size_tier=item.size_tier,
        )
        model.add_market(item.asin, [replace(c) for c in item.competitors] + [ours], item.demand_per_hour)
        published[item.asin] = item.base_minor
    repricer = Repricer(strategy, items)
    end = START + hours * 3600
    step = reprice_minutes * 60
    changes = 0
    t = START
    while t < end:
        model.advance_to(t)
        for asin, price in repricer.price(model, published, t).items():
            if price != published[asin]:
                published[asin] = price
                model.set_offer(asin, OUR_SELLER, price_minor=price)
                changes += 1
        t += step
    model.advance_to(end)

    weight = sum(i.demand_per_hour for i in items) * (end - START)
    held = sum(i.demand_per_hour * model.held_seconds(i.asin, OUR_SELLER) for i in items)
    ours_sales = [s for s in model.sales if s.seller_id == OUR_SELLER]
    ratios, below, below_floor, details = [], 0, 0, []
    for item in items:
        bots = [c for c in item.competitors if c.strategy == "undercut_bot"]
        lowest = model.lowest_price(item.asin, OUR_SELLER)
        if not bots or lowest is None:
            continue
        be = item.break_even_minor
        ratios.append(lowest / be)
        below += lowest < be
        floor = repricer.cost_floor.get(item.asin)
        below_floor += floor is not None and lowest < floor
        details.append(
            {
                "strategy": strategy,
                "asin": item.asin,
                "bots": ",".join(c.seller_id for c in bots),
                "bot_floor_minor": min(c.floor_minor for c in bots),
                "our_lowest_minor": lowest,
                "break_even_minor": be,
                "profit_floor_minor": floor if floor is not None else "",
                "min_price_minor": item.min_minor,
            }
        )
    ratios.sort()
    return Result(
        strategy=strategy,
        share=held / weight if weight else 0.0,
        profit_minor=sum(s.profit_minor or 0 for s in ours_sales),
        units=len(ours_sales),
        changes=changes,
        lost=model.lost_orders(),
        bot_asins=len(ratios),
        bot_below_break_even=below,
        bot_lowest_ratio_min=ratios[0] if ratios else None,
        bot_lowest_ratio_median=ratios[len(ratios) // 2] if ratios else None,
        below_profit_floor=below_floor if strategy == "ours" else None,
        seconds=time.perf_counter() - started,
        details=details,
    )


def _money(minor: int) -> str:
    return f"{'-' if minor < 0 else ''}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def report(results: list[Result]) -> list[str]:
    lines = [
        f"{'strategy':<12} {'share':>7} {'profit':>11} {'units':>6} {'changes':>8} {'lost':>5} "
        f"{'bot_asins':>9} {'bot_below_be':>12} {'bot_low_min':>11} {'bot_low_med':>11} {'seconds':>8}"
    ]
    for r in results:
        low_min = f"{r.bot_lowest_ratio_min:.3f}" if r.bot_lowest_ratio_min is not None else "n/a"
        low_med = f"{r.bot_lowest_ratio_median:.3f}" if r.bot_lowest_ratio_median is not None else "n/a"
        lines.append(
            f"{r.strategy:<12} {r.share:>7.4f} {_money(r.profit_minor):>11} {r.units:>6} {r.changes:>8} {r.lost:>5} "
            f"{r.bot_asins:>9} {r.bot_below_break_even:>12} {low_min:>11} {low_med:>11} {r.seconds:>8.1f}"
        )
    by = {r.strategy: r for r in results}
    if "ours" in by and by["ours"].below_profit_floor is not None:
        lines.append(f"ours: undercut_bot ASINs priced below the rules' profit floor: {by['ours'].below_profit_floor}")
    parts = []
    for name, label in (("ours", "ours"), ("seed", "seed"), ("amazon_like", "amazon")):
        r = by.get(name)
        parts.append(
            f"{label}_share={r.share:.4f} {label}_profit={_money(r.profit_minor)}"
            if r
            else f"{label}_share=n/a {label}_profit=n/a"
        )
    lines.append("market: " + " ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asins", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reprice-minutes", type=float, default=5.0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset, in print order")
    parser.add_argument("--details", help="write one CSV row per strategy and undercut_bot ASIN here")
    args = parser.parse_args(argv)
    items = build_world(args.seed, args.asins)
    counts: dict[str, int] = {}
    for item in items:
        for c in item.competitors:
            counts[str(c.strategy)] = counts.get(str(c.strategy), 0) + 1
    print(
        f"market: {args.asins} ASINs, {sum(counts.values())} competitors "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}), {args.hours:g} simulated hours, "
        f"repricing every {args.reprice_minutes:g} simulated minutes, seed {args.seed}",
        flush=True,
    )
    results = []
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        if strategy not in STRATEGIES:
            parser.error(f"unknown strategy {strategy!r}")
        results.append(run(items, strategy, args.seed, args.hours, args.reprice_minutes))
        print(f"  {strategy}: done in {results[-1].seconds:.1f} s", flush=True)
    if args.details:
        with open(args.details, "w", newline="") as fh:
            rows = [d for r in results for d in r.details]
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["strategy"])
            writer.writeheader()
            writer.writerows(rows)
    for line in report(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
