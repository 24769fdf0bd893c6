"""Backtest a candidate rules file against the rules that were live, on the channel's recorded market.

Replays `offer_observations` hour by hour over a window: at each hour the offers as they stood (per ASIN and seller
the newest observation at or before the hour, no older than `freshness_hours`), our SKUs priced twice with the rules
engine (the live rules and the candidate), and the Buy Box decided for each under the market's award model
(emulator/README.md, "Market model", written here again in SQL from its text, sharing no code with the emulator's
market):

- eligible: a competitor offer with feedback_rating >= 70 or no rating (observations carry no quantity: every
  observed offer counts as in stock); our offer always (the backtest assumes our stock lasts);
- score (lower wins) = landed_minor x (10000 - 300 [FBA] - 100 [feedback_rating >= 95]), compared as integers; ties:
  FBA first, then the higher feedback_rating (none: last), then the lower seller_id (then our SKU, for two of ours);
- suppressed (no winner) while the lowest eligible landed price is above 1.20 x the ASIN's reference price, the median
  of its hourly lowest eligible landed prices over the previous 24 hours (none yet: never suppressed). The window is
  replayed from 24 hours before its start so its first hours have that history. With an even count the median is the
  mean of the two middle prices; the test is exact: 5 x lowest > 3 x (2 x median).
- demand: a uniform estimate of `units_per_hour` per ASIN and hour (the expected value of the model's Poisson demand
  with one rate for every ASIN); the hour's winner gets it, a suppressed hour loses it;
- profit per unit = price - cost - fees (referral_rate x price rounded half up, plus fixed_fee_minor), in minor units,
  on the item price (shipping is a pass-through); a SKU without cost has no profit (NULL), and without fees the fees
  are 0.

Everything after the pricing is one SQL statement per step over SKUs x hours; pricing runs once per hour and rule set
(each call one vectorized statement over every SKU). Dagster-free: the caller stages the inputs in `con`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pricing.rules import price_with_rules
from seller.config import Channel, Pricing
from seller.inputs import ERROR_SCHEMA, validated_input

__all__ = [
    "BacktestResult",
    "HISTORY_HOURS",
    "describe_problems",
    "RULES_INPUT",
    "replay",
    "replay_hours",
    "validate_rules_file",
]

HISTORY_HOURS = 24  # the suppression's reference looks this far back
SCENARIOS = ("live", "candidate")


def replay_hours(start: datetime, end: datetime) -> list[datetime]:
    """The hours replayed for the window [start, end): the 24 hours before it (history only) and its own."""
    first = start - timedelta(hours=HISTORY_HOURS)
    return [first + timedelta(hours=i) for i in range(int((end - first) / timedelta(hours=1)))]


@dataclass(frozen=True)
class BacktestResult:
    skus: pa.Table  # one row per SKU: prices, Buy Box hours, units and profit for live and candidate
    hours: pa.Table  # one row per hour of the window: share and profit for live and candidate
    summary: dict[str, Any]  # the window's totals


# Per (hour, ASIN, seller): the newest observation at or before the hour, if still fresh then. Two sources seeing one
# offer at the same instant: the newest recorded wins, then the source name (deterministic).
_STOOD = """
CREATE OR REPLACE TEMP TABLE bt_stood AS
WITH obs AS (
    SELECT * FROM {observations}
    WHERE asin IN (SELECT asin FROM {listings})
    QUALIFY row_number() OVER (PARTITION BY asin, seller_id, observed_at ORDER BY recorded_at DESC, source) = 1
), grid AS (
    SELECT p.asin, p.seller_id, h.hour FROM (SELECT DISTINCT asin, seller_id FROM obs) p CROSS JOIN bt_hours h
)
SELECT g.hour, o.asin, o.seller_id, o.price, o.shipping, o.fulfillment, o.observed_at, o.is_featured_merchant,
       o.feedback_rating, o.feedback_count
FROM grid g ASOF JOIN obs o ON o.asin = g.asin AND o.seller_id = g.seller_id AND o.observed_at <= g.hour
WHERE o.observed_at >= g.hour - to_hours(CAST($freshness AS BIGINT))
"""

_OFFERS_NOW = """
CREATE OR REPLACE TEMP TABLE bt_offers_now AS
SELECT asin, seller_id, price, shipping, fulfillment, observed_at, is_featured_merchant, feedback_rating,
       feedback_count
FROM bt_stood WHERE hour = $hour AND seller_id <> $seller_id
"""
# published_price: what Amazon showed for our offer on the ASIN at the hour (our own observation), else NULL.
_LISTINGS_NOW = """
CREATE OR REPLACE TEMP TABLE bt_listings_now AS
SELECT l.*, o.price AS published_price
FROM {listings} l LEFT JOIN (SELECT asin, price FROM bt_stood WHERE hour = $hour AND seller_id = $seller_id) o
    USING (asin)
"""

_AWARD = """
CREATE OR REPLACE TEMP TABLE bt_award AS
WITH ours AS (
    SELECT p.scenario, p.hour, p.asin, $seller_id AS seller_id, p.sku, p.fulfillment = 'FBA' AS fba,
           p.price_minor + p.ship_minor AS landed_minor, s.feedback_rating
    FROM bt_prices p
    LEFT JOIN bt_stood s ON s.hour = p.hour AND s.asin = p.asin AND s.seller_id = $seller_id
), theirs AS (
    SELECT sc.scenario, s.hour, s.asin, s.seller_id, NULL::VARCHAR AS sku, s.fulfillment = 'FBA' AS fba,
           to_minor(s.price, $decimals) + to_minor(s.shipping, $decimals) AS landed_minor, s.feedback_rating
    FROM bt_stood s CROSS JOIN (SELECT unnest($scenarios) AS scenario) sc
    WHERE s.seller_id <> $seller_id AND (s.feedback_rating IS NULL OR s.feedback_rating >= 70)
), scored AS (
    SELECT *, CAST(landed_minor AS HUGEINT)
              * (10000 - 300 * CAST(fba AS INTEGER) - 100 * CAST(coalesce(feedback_rating >= 95, false) AS INTEGER))
              AS score_e4
    FROM (SELECT * FROM ours UNION ALL SELECT * FROM theirs)
), market AS (
    SELECT scenario, hour, asin, min(landed_minor) AS lowest_minor FROM scored GROUP BY ALL
), reference AS (
    SELECT *, CAST(2 * median(lowest_minor) OVER (
               PARTITION BY scenario, asin ORDER BY hour
               RANGE BETWEEN INTERVAL 24 HOURS PRECEDING AND INTERVAL 1 HOUR PRECEDING) AS BIGINT) AS reference2_minor
    FROM market
), winners AS (
    SELECT * FROM scored
    QUALIFY row_number() OVER (
        PARTITION BY scenario, hour, asin
        ORDER BY score_e4, fba DESC, feedback_rating DESC NULLS LAST, seller_id, sku) = 1
)
SELECT w.scenario, w.hour, w.asin, w.seller_id AS winner_seller_id, w.sku AS winner_sku,
       w.landed_minor AS winner_landed_minor, r.lowest_minor, r.reference2_minor,
       coalesce(5 * r.lowest_minor > 3 * r.reference2_minor, false) AS suppressed
FROM winners w JOIN reference r USING (scenario, hour, asin)
"""

# One row per SKU and hour of the window with both scenarios side by side.
_PAIRS = """
CREATE OR REPLACE TEMP TABLE bt_pairs AS
WITH per AS (
    SELECT p.scenario, p.hour, p.sku, p.asin, p.price_minor,
           coalesce(a.winner_sku = p.sku AND NOT a.suppressed, false) AS holds,
           a.suppressed,
           c.cost_minor,
           CAST(round(coalesce(f.referral_rate, 0) * p.price_minor) AS BIGINT) + coalesce(f.fixed_fee_minor, 0)
               AS fee_minor
    FROM bt_prices p
    JOIN bt_award a USING (scenario, hour, asin)
    JOIN bt_costs c USING (sku)
    LEFT JOIN {fees} f USING (sku)
    WHERE p.hour >= $start
), unit AS (
    SELECT *, CASE WHEN holds THEN $units ELSE 0 END AS units,
           CASE WHEN holds THEN $units ELSE 0 END * (price_minor - cost_minor - fee_minor) AS profit_minor
    FROM per
)
SELECT l.hour, l.sku, l.asin,
       l.price_minor AS live_price_minor, c.price_minor AS candidate_price_minor,
       l.holds AS live_holds, c.holds AS candidate_holds,
       l.suppressed AS live_suppressed, c.suppressed AS candidate_suppressed,
       l.units AS live_units, c.units AS candidate_units,
       l.profit_minor AS live_profit_minor, c.profit_minor AS candidate_profit_minor
FROM unit l JOIN unit c ON c.scenario = 'candidate' AND c.hour = l.hour AND c.sku = l.sku
WHERE l.scenario = 'live'
"""

_SKUS = """
SELECT sku, any_value(asin) AS asin, count(*) AS hours,
       count(*) FILTER (candidate_price_minor <> live_price_minor) AS price_diff_hours,
       from_minor(CAST(round(avg(candidate_price_minor - live_price_minor)) AS BIGINT), $decimals) AS mean_price_diff,
       from_minor(arg_max(live_price_minor, hour), $decimals) AS live_last_price,
       from_minor(arg_max(candidate_price_minor, hour), $decimals) AS candidate_last_price,
       count(*) FILTER (live_holds) AS live_buybox_hours,
       count(*) FILTER (candidate_holds) AS candidate_buybox_hours,
       sum(live_units)::BIGINT AS live_units, sum(candidate_units)::BIGINT AS candidate_units,
       CAST(sum(live_profit_minor) AS BIGINT) AS live_profit_minor,
       CAST(sum(candidate_profit_minor) AS BIGINT) AS candidate_profit_minor,
       from_minor(CAST(sum(live_profit_minor) AS BIGINT), $decimals) AS live_profit,
       from_minor(CAST(sum(candidate_profit_minor) AS BIGINT), $decimals) AS candidate_profit
FROM bt_pairs GROUP BY sku ORDER BY sku
"""

# Share per hour: the demand on our ASINs that our offers would have won (uniform demand: the ASINs held / ours).
_HOURS = """
WITH per_asin AS (
    SELECT hour, asin, bool_or(live_holds) AS live_holds, bool_or(candidate_holds) AS candidate_holds,
           bool_or(live_suppressed) AS live_suppressed, bool_or(candidate_suppressed) AS candidate_suppressed
    FROM bt_pairs GROUP BY ALL
), asins AS (
    SELECT hour, count(*) AS asins, count(*) FILTER (live_holds) AS live_held,
           count(*) FILTER (candidate_holds) AS candidate_held,
           count(*) FILTER (live_suppressed) AS live_suppressed,
           count(*) FILTER (candidate_suppressed) AS candidate_suppressed
    FROM per_asin GROUP BY hour
), money AS (
    SELECT hour, CAST(sum(live_profit_minor) AS BIGINT) AS live_profit_minor,
           CAST(sum(candidate_profit_minor) AS BIGINT) AS candidate_profit_minor,
           sum(live_units)::BIGINT AS live_units, sum(candidate_units)::BIGINT AS candidate_units
    FROM bt_pairs GROUP BY hour
)
SELECT hour, asins, live_held, candidate_held, live_suppressed, candidate_suppressed,
       live_units, candidate_units, live_profit_minor, candidate_profit_minor,
       from_minor(coalesce(live_profit_minor, 0), $decimals) AS live_profit,
       from_minor(coalesce(candidate_profit_minor, 0), $decimals) AS candidate_profit
FROM asins JOIN money USING (hour) ORDER BY hour
"""


_NO_FEES = "(SELECT NULL::VARCHAR AS sku, NULL::DECIMAL(9,6) AS referral_rate, NULL::BIGINT AS fixed_fee_minor LIMIT 0)"


def replay(
    con: duckdb.DuckDBPyConnection,
    *,
    listings: str,
    observations: str,
    live_rules: str | None,
    candidate_rules: str | None,
    fees: str | None,
    seller_id: str,
    channel: str,
    decimals: int,
    pricing: Pricing,
    start: datetime,
    end: datetime,
    units_per_hour: int = 1,
) -> BacktestResult:
    """Backtest the window [start, end) (whole hours, UTC-aware) on `con` (money macros installed).

    `listings`: the pricing engine's listings columns (sku, asin, fulfillment, base_price, min_price, max_price,
    shipping, undercut_percent, cost, brand, product_type), SKUs with an ASIN; `observations`: `offer_observations`
    rows (ours included) covering [start - 24 h - freshness_hours, end); rules and fees as the engine takes them.
    """
    hours = replay_hours(start, end)
    con.execute("CREATE OR REPLACE TEMP TABLE bt_hours AS SELECT unnest($hours)::TIMESTAMPTZ AS hour", {"hours": hours})
    con.execute(_STOOD.format(observations=observations, listings=listings), {"freshness": pricing.freshness_hours})
    con.execute(
        "CREATE OR REPLACE TEMP TABLE bt_prices (scenario VARCHAR, hour TIMESTAMPTZ, sku VARCHAR, asin VARCHAR, "
        "fulfillment VARCHAR, price_minor BIGINT, ship_minor BIGINT, outcome VARCHAR)"
    )
    engine = {"seller_id": seller_id, "channel": channel, "decimals": decimals, "pricing": pricing}
    for hour in hours:
        at = {"hour": hour, "seller_id": seller_id}
        con.execute(_OFFERS_NOW, at)
        con.execute(_LISTINGS_NOW.format(listings=listings), at)
        for scenario, rules in zip(SCENARIOS, (live_rules, candidate_rules), strict=True):
            priced = price_with_rules(con, "bt_listings_now", "bt_offers_now", rules, fees, now=hour, **engine)
            con.register("bt_priced", priced)
            try:
                con.execute(
                    "INSERT INTO bt_prices SELECT $scenario, $hour, sku, asin, fulfillment, price_minor, ship_minor, "
                    "outcome FROM bt_priced",
                    {"scenario": scenario, "hour": hour},
                )
            finally:
                con.unregister("bt_priced")
    params = {"seller_id": seller_id, "decimals": decimals}
    con.execute(_AWARD, {**params, "scenarios": list(SCENARIOS)})
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE bt_costs AS SELECT sku, to_minor(cost, $decimals) AS cost_minor FROM {listings}",
        {"decimals": decimals},
    )
    con.execute(_PAIRS.format(fees=fees or _NO_FEES), {"start": start, "units": units_per_hour})
    skus = con.sql(_SKUS, params={"decimals": decimals}).to_arrow_table()
    per_hour = con.sql(_HOURS, params={"decimals": decimals}).to_arrow_table()
    return BacktestResult(skus, per_hour, _summary(con, decimals))


def _summary(con: duckdb.DuckDBPyConnection, decimals: int) -> dict[str, Any]:
    row = con.execute(
        """
        WITH per_asin AS (
            SELECT hour, asin, bool_or(live_holds) AS live_holds, bool_or(candidate_holds) AS candidate_holds
            FROM bt_pairs GROUP BY ALL
        )
        SELECT (SELECT count(DISTINCT sku) FROM bt_pairs),
               (SELECT count(DISTINCT sku) FILTER (candidate_price_minor <> live_price_minor) FROM bt_pairs),
               (SELECT count(DISTINCT sku) FROM bt_pairs p JOIN bt_costs c USING (sku) WHERE c.cost_minor IS NULL),
               count(*), count(*) FILTER (live_holds), count(*) FILTER (candidate_holds),
               (SELECT CAST(sum(live_profit_minor) AS BIGINT) FROM bt_pairs),
               (SELECT CAST(sum(candidate_profit_minor) AS BIGINT) FROM bt_pairs),
               (SELECT sum(live_units)::BIGINT FROM bt_pairs), (SELECT sum(candidate_units)::BIGINT FROM bt_pairs)
        FROM per_asin
        """
    ).fetchall()[0]
    skus, differ, no_cost, asin_hours, live_held, cand_held, live_profit, cand_profit, live_units, cand_units = row
    return {
        "skus": skus,
        "skus_price_differs": differ,
        "skus_without_cost": no_cost,
        "asin_hours": asin_hours,
        "live_buybox_asin_hours": live_held,
        "candidate_buybox_asin_hours": cand_held,
        "live_share": live_held / asin_hours if asin_hours else None,
        "candidate_share": cand_held / asin_hours if asin_hours else None,
        "live_units": live_units or 0,
        "candidate_units": cand_units or 0,
        "live_profit_minor": live_profit or 0,
        "candidate_profit_minor": cand_profit or 0,
    }


# --- the candidate rules file ------------------------------------------------------------------------------------

RULES_INPUT = "pricing_rules"


def validate_rules_file(
    con: duckdb.DuckDBPyConnection, path: str, channels: dict[str, Channel], channel: str, table: str
) -> pa.Table:
    """Validate the rules file at `path` (CSV or Parquet) as the `pricing_rules` input, for `channel`: its valid rows
    become table `table` in `con`; returns the problems that block the channel (ERROR_SCHEMA), each naming the file
    by the path given, its row and column. An empty table: the rules are good."""
    source = Path(path)
    if source.suffix.lower() not in (".csv", ".parquet") or not source.is_file():
        reason = "no such file" if not source.exists() else "not a file"
        if source.suffix.lower() not in (".csv", ".parquet"):
            reason = "expected a .csv or .parquet file"
        problem = {
            "file": path,
            "row": 0,
            "column": "",
            "value": "",
            "message": reason,
            "channel": None,
            "severity": "error",
        }
        return pa.Table.from_pylist([problem], schema=ERROR_SCHEMA)
    # The validator finds an input by its name in a folder: the file is linked there under that name.
    with tempfile.TemporaryDirectory(prefix="backtest-rules-") as folder:
        (Path(folder) / f"{RULES_INPUT}{source.suffix.lower()}").symlink_to(source.resolve())
        with validated_input(con, RULES_INPUT, folder, channels, channel=channel, table=table) as loaded:
            errors = loaded.errors_for(channel)
    named = pa.array([path] * errors.num_rows, pa.string())
    return errors.set_column(errors.schema.get_field_index("file"), "file", named) if errors.num_rows else errors


def describe_problems(errors: pa.Table, limit: int = 20) -> str:
    """The problems as lines `file, row R, column C: message (value 'V')`, at most `limit` of them."""
    lines = []
    for problem in errors.slice(0, limit).to_pylist():
        where = f"row {problem['row']}" + (f", column {problem['column']}" if problem["column"] else "")
        value = f" (value {problem['value']!r})" if problem["value"] else ""
        lines.append(f"{problem['file']}, {where}: {problem['message']}{value}")
    if errors.num_rows > limit:
        lines.append(f"... and {errors.num_rows - limit} more")
    return "\n".join(lines)
