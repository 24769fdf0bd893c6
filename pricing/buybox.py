"""The seed's `match_competitor` rule: undercut the lowest fresh competitor, never leave [min_price, max_price].

Per SKU: competitors are the offers on the same ASIN in the channel, without the seller's own offers, without offers
observed more than `freshness_hours` ago and, with `compete_with: fba_only`, FBA offers only. Landed price = price +
shipping. Target landed = lowest competitor landed x (1 - undercut_percent / 100), rounded *down* to the currency's
minor unit so the undercut is never lost; our price = target landed - our own shipping; then clamped to the SKU's
floor and ceiling. Without a fresh competitor the base price is kept, clamped. Ties between equally cheap competitors
go to the FBA offer, then to the lower seller id, so the answer is deterministic.

Outcomes: `no_competitor`, `at_floor` (the rule asked for less than min_price), `at_ceiling` (more than max_price),
`unchanged` (the rule's price equals the base price) and `undercut`.

The pipeline prices with `pricing.rules` (this rule is its implicit `default`); this module stays as the reference the
engine is held to, written on its own: tests assert the engine without a rules file prices exactly like it, and
`bench.pricing` and `bench.market` measure the engine and the baselines against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from seller.config import Pricing

__all__ = ["OUTCOMES", "buybox_prices"]

OUTCOMES = ("undercut", "at_floor", "at_ceiling", "no_competitor", "unchanged")

# undercut_percent has at most 4 decimals, so percent x 10^4 is an exact integer ("micro-fractions" of 1).
_SQL = """
WITH items AS (
    SELECT sku, asin, fulfillment,
           to_minor(base_price, $decimals) AS base_minor,
           to_minor(min_price, $decimals) AS min_minor,
           to_minor(max_price, $decimals) AS max_minor,
           CASE WHEN fulfillment = 'FBA' THEN 0 ELSE to_minor(coalesce(shipping, 0), $decimals) END AS ship_minor,
           coalesce(undercut_percent, CAST($undercut AS DECIMAL(9,4))) AS undercut_percent,
           CAST(coalesce(undercut_percent, CAST($undercut AS DECIMAL(9,4))) * 10000 AS BIGINT) AS undercut_e4
    FROM {listings}
),
ranked AS (
    SELECT o.asin, o.seller_id, o.fulfillment,
           to_minor(o.price, $decimals) + to_minor(o.shipping, $decimals) AS landed_minor,
           row_number() OVER (
               PARTITION BY o.asin
               ORDER BY to_minor(o.price, $decimals) + to_minor(o.shipping, $decimals), o.fulfillment = 'FBA' DESC,
                        o.seller_id
           ) AS rank
    FROM {offers} o
    WHERE o.seller_id <> $seller_id
      AND o.observed_at >= CAST($fresh_since AS TIMESTAMPTZ)
      AND ($fba_only = false OR o.fulfillment = 'FBA')
      AND o.asin IN (SELECT asin FROM items)
),
best AS (SELECT * FROM ranked WHERE rank = 1),
proposed AS (
    SELECT i.*, b.seller_id AS competitor_seller_id, b.fulfillment AS competitor_fulfillment,
           b.landed_minor AS competitor_landed_minor,
           CASE WHEN b.asin IS NULL THEN i.base_minor
                ELSE CAST(CAST(b.landed_minor AS HUGEINT) * (1000000 - i.undercut_e4) // 1000000 AS BIGINT)
                     - i.ship_minor
           END AS rule_minor
    FROM items i LEFT JOIN best b ON b.asin = i.asin
)
SELECT sku, asin, fulfillment, base_minor, min_minor, max_minor, ship_minor,
       greatest(min_minor, least(max_minor, rule_minor)) AS price_minor,
       CASE WHEN competitor_seller_id IS NULL THEN 'no_competitor'
            WHEN rule_minor < min_minor THEN 'at_floor'
            WHEN rule_minor > max_minor THEN 'at_ceiling'
            WHEN rule_minor = base_minor THEN 'unchanged'
            ELSE 'undercut' END AS outcome,
       competitor_seller_id, competitor_fulfillment, competitor_landed_minor, undercut_percent
FROM proposed
"""


def buybox_prices(
    con: duckdb.DuckDBPyConnection,
    listings: str,
    offers: str,
    *,
    seller_id: str,
    decimals: int,
    pricing: Pricing,
    now: datetime,
) -> duckdb.DuckDBPyRelation:
    """Price every listing; `listings` and `offers` name relations visible to `con`.

    `listings`: sku, asin, fulfillment, base_price, min_price, max_price, shipping, undercut_percent (DECIMALs).
    `offers`: asin, seller_id, price, shipping, fulfillment, observed_at (TIMESTAMPTZ).
    Money macros (`pricing.money.install_money_macros`) must be installed on `con`.
    """
    params = {
        "decimals": decimals,
        "undercut": str(pricing.undercut_percent),
        "seller_id": seller_id,
        "fresh_since": (now - timedelta(hours=pricing.freshness_hours)).isoformat(),
        "fba_only": pricing.compete_with == "fba_only",
    }
    return con.sql(_SQL.format(listings=listings, offers=offers), params=params)
