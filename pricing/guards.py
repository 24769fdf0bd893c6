"""The guards against runaway prices (a glitch in the offers, a bad rules file), applied after pricing.

`max_change_percent` (per channel, default none): a SKU whose new price moves further than that from its published
price (the price Amazon last accepted for it, `published_state`) is held at its published price, outcome
`guard_held`. A SKU never published has no guard. The seller's floor and ceiling still win: a published price that is
outside [min_price, max_price] now is clamped into them, and the SKU's `guard` text says so.

Large drops: the blocking check on `buybox_prices` fails when more than `large_move_share` of the priced SKUs would
drop by more than `large_move_percent` against their published price in this run (`large_drops`).

Percent comparisons are exact integer arithmetic on minor units (percents carry at most 4 decimals).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import duckdb

from seller.config import Pricing

__all__ = ["GUARD_HELD", "HELD_HISTORY", "LargeDrops", "hold_large_changes", "large_drops", "published_prices"]

GUARD_HELD = "guard_held"

# `held`: the new price moved more than max_change_percent from the published one: |new - published| / published >
# max_e4 / 10^6, cross-multiplied. The held price is the published one, clamped to the SKU's floor and ceiling.
_HOLD = """
SELECT * EXCLUDE (held, kept_minor) REPLACE (
    CASE WHEN held THEN kept_minor ELSE price_minor END AS price_minor,
    CASE WHEN held THEN '{held}' ELSE outcome END AS outcome{chain}
),
CASE WHEN held THEN
    'held at ' || money_text(kept_minor, $decimals) || ' instead of ' || money_text(price_minor, $decimals)
    || ' (' || CAST(CAST((price_minor - published_minor) * 10000 // published_minor AS DECIMAL(38, 0)) * 0.01
                    AS VARCHAR)
    || ' % from the published ' || money_text(published_minor, $decimals) || ', max_change_percent '
    || $max_change || ')'
    || CASE WHEN published_minor < min_minor THEN '; the published price is below min_price now: clamped'
            WHEN published_minor > max_minor THEN '; the published price is above max_price now: clamped'
            ELSE '' END
END AS guard
FROM (
    SELECT x.*, p.published_minor,
           CAST($max_e4 AS BIGINT) IS NOT NULL AND p.published_minor IS NOT NULL
           AND abs(CAST(x.price_minor AS HUGEINT) - p.published_minor) * 1000000
               > CAST($max_e4 AS HUGEINT) * p.published_minor AS held,
           greatest(x.min_minor, least(x.max_minor, p.published_minor)) AS kept_minor
    FROM {priced} x
    LEFT JOIN (SELECT sku, price_minor AS published_minor FROM {published}) p USING (sku)
)
"""

_CHAIN = """,
    CASE WHEN NOT held THEN rule_chain
         WHEN kept_minor = published_minor THEN rule_chain || ' > guard:' || money_text(kept_minor, $decimals)
         ELSE rule_chain || ' > guard:' || money_text(published_minor, $decimals) || ' > clamp:'
              || money_text(kept_minor, $decimals)
    END AS rule_chain"""

# The held SKUs as sync_history rows (operation `price`): what the push then sees is their published price, so it
# records them `unchanged` (or sends the published price with a changed quantity).
HELD_HISTORY = """
SELECT $channel, sku, asin, 'price', outcome, 'max_change_percent', guard, $run_id, $now
FROM {prices} WHERE guard IS NOT NULL
"""

# SKUs whose price drops more than large_move_percent against the published one: (published - new) / published >
# percent_e4 / 10^6, cross-multiplied; the largest relative drops first.
_DROPS = """
SELECT sku, from_minor(published_minor, $decimals) AS published, from_minor(price_minor, $decimals) AS price
FROM {prices}
WHERE published_minor IS NOT NULL
  AND (CAST(published_minor AS HUGEINT) - price_minor) * 1000000 > CAST($percent_e4 AS HUGEINT) * published_minor
ORDER BY (CAST(published_minor AS HUGEINT) - price_minor) * 1000000 // published_minor DESC, sku
"""


def _e4(value: Decimal) -> int:
    """A percent or fraction with at most 4 decimals (the config validates it) x 10^4: an exact integer."""
    return int(value.scaleb(4))


def published_prices(con: duckdb.DuckDBPyConnection, tables: set[str]) -> duckdb.DuckDBPyRelation:
    """`sku, price_minor` of the price Amazon last accepted per SKU (`published_state`, one row per SKU); empty
    before the channel's first push (`tables`: the channel's tables)."""
    if "published_state" in tables:
        return con.sql("SELECT sku, price_minor FROM published_state WHERE price_minor IS NOT NULL")
    return con.sql("SELECT CAST(NULL AS VARCHAR) AS sku, CAST(NULL AS BIGINT) AS price_minor WHERE false")


def hold_large_changes(
    con: duckdb.DuckDBPyConnection, priced: str, published: str, *, pricing: Pricing, decimals: int
) -> duckdb.DuckDBPyRelation:
    """`priced` (buybox_prices' columns: sku, price_minor, min_minor, max_minor, outcome, optionally rule_chain) with
    the `max_change_percent` guard applied, plus `published_minor` (NULL: never published) and `guard` (why a SKU was
    held; NULL otherwise). `published`: a relation `sku, price_minor`. Money macros must be installed on `con`."""
    limit = pricing.max_change_percent
    chain = _CHAIN if "rule_chain" in con.sql(f"SELECT * FROM {priced} LIMIT 0").columns else ""
    sql = _HOLD.format(priced=priced, published=published, held=GUARD_HELD, chain=chain)
    params = {
        "decimals": decimals,
        "max_e4": None if limit is None else _e4(limit),
        "max_change": "none" if limit is None else f"{limit.normalize():f}",
    }
    return con.sql(sql, params=params)


@dataclass(frozen=True)
class LargeDrops:
    """What the large-drop check found: `dropped` of `priced` SKUs would drop more than the threshold."""

    priced: int
    dropped: int
    percent: Decimal
    share_limit: Decimal
    examples: list[tuple[str, Decimal, Decimal]]  # (sku, published, new price), the largest relative drops first

    @property
    def share(self) -> Decimal:
        return (Decimal(self.dropped) / Decimal(self.priced)).quantize(Decimal("0.0001")) if self.priced else Decimal(0)

    @property
    def too_many(self) -> bool:
        """More than `share_limit` of the priced SKUs drop (exact: dropped x 10^4 > share_e4 x priced)."""
        return self.dropped * 10000 > _e4(self.share_limit) * self.priced


def large_drops(
    con: duckdb.DuckDBPyConnection, prices: str, *, pricing: Pricing, decimals: int, examples: int = 5
) -> LargeDrops:
    """Count the SKUs of `prices` (price_minor, published_minor) that drop by more than `large_move_percent` against
    their published price. Money macros must be installed on `con`."""
    priced = con.execute(f"SELECT count(*) FROM {prices}").fetchall()[0][0]
    rows = con.execute(
        f"SELECT *, count(*) OVER () FROM ({_DROPS.format(prices=prices)}) LIMIT $examples",
        {"percent_e4": _e4(pricing.large_move_percent), "decimals": decimals, "examples": examples},
    ).fetchall()
    return LargeDrops(
        priced=priced,
        dropped=rows[0][3] if rows else 0,
        percent=pricing.large_move_percent,
        share_limit=pricing.large_move_share,
        examples=[(sku, published, price) for sku, published, price, _ in rows],
    )
