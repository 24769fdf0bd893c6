"""Layered pricing rules: every SKU's price and the chain of rules that produced it, in one DuckDB statement.

Per SKU: start from the master price (`base_price`) and apply the matching active rules of the channel in ascending
`priority`, ties broken by scope (all < product_type < brand < sku) then `rule_id`. Every step works in integer minor
units (cents; whole yen):

- `markup_percent v`: cost x (1 + v/100), rounded half up; `markup_fixed v`: cost + v (no cost: skipped);
- `set_price v`: v; `discount_percent v`: price x (1 - v/100), rounded half up; `discount_fixed v`: price - v, never
  below 0;
- `match_competitor v`: the lowest fresh competitor landed price (the channel's competitor filters) x (1 - v/100),
  rounded *down*, minus our shipping. No competitor: `pricing.no_competitor` (`base`: skipped, the price so far;
  `max`: max_price; `hold`: the price Amazon has, skipped when it has none). A result below min_price:
  `pricing.below_floor` (`floor`: kept, the final clamp lifts it; `hold`: the price Amazon has, else kept; `max`:
  max_price);
- `cost_floor v`: at least (cost + fixed fees) / (1 - referral rate - v/100), rounded *up*: the lowest price that
  leaves a margin of v % of the price after Amazon's fees (no cost: skipped; no fee estimate: fees count as 0; a
  referral rate plus margin of 100 % or more: skipped);
- `floor v`: at least v; `ceiling v`: at most v.

After the rules the price is clamped to [min_price, max_price], always. The channel's `pricing:` block is the implicit
rule `default` (match_competitor with the SKU's or the channel's undercut, priority 0, scope all) unless
`default_rule: false`, so without a rules file every price equals `pricing.buybox.buybox_prices`.

`rule_chain` lists the steps that applied, each with the price after it (`default:19.40 > R7:21.34 > clamp:20.00`);
a step that could not apply says why (`R3:skipped(no cost)`), a scenario setting that decided says which
(`default:30.00(no competitor: max)`), and `clamp` appears only when it changed the price.

The fold over each SKU's ordered steps is `list_reduce` over a list of structs; the lists are built once per
distinct scope signature (the SKU's product type, brand and SKU where rules name them), not once per SKU.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from seller.config import Pricing

__all__ = ["MONEY_TYPES", "OUTCOMES", "PERCENT_TYPES", "RULE_TYPES", "SCOPES", "price_with_rules"]

# `value` is a percentage for these (at most 4 decimals: percent x 10^4 is an exact integer) ...
PERCENT_TYPES = ("markup_percent", "discount_percent", "match_competitor", "cost_floor")
# ... and an amount in the channel's currency for these.
MONEY_TYPES = ("markup_fixed", "set_price", "discount_fixed", "floor", "ceiling")
RULE_TYPES = PERCENT_TYPES + MONEY_TYPES
SCOPES = ("all", "product_type", "brand", "sku")
OUTCOMES = ("undercut", "at_floor", "at_ceiling", "no_competitor", "unchanged", "repriced")

# Columns a caller may leave out (older listings or offers relations): NULL, i.e. unknown.
_OPTIONAL_LISTING = {
    "cost": "DECIMAL(18,2)",
    "brand": "VARCHAR",
    "product_type": "VARCHAR",
    "published_price": "DECIMAL(18,2)",
}
_OPTIONAL_OFFER = {"is_featured_merchant": "BOOLEAN", "feedback_rating": "DECIMAL(6,2)", "feedback_count": "BIGINT"}

# Inside the statement a rule type is its position in RULE_TYPES (1-based) and a step's status a small integer: the
# per-SKU work compares integers, never text.
_T = {name: i for i, name in enumerate(RULE_TYPES, start=1)}
# Status of a step: 0 applied; 1-3 skipped (the price so far is kept); 4-8 a scenario setting decided.
_REASONS = (
    "no cost",
    "margin unreachable",
    "no competitor",
    "no competitor: max",
    "no competitor: hold",
    "below floor",
    "below floor: max",
    "below floor: hold",
)
_SKIPPED = "(1, 2, 3)"

_DEFAULT_RULE = f"""
SELECT 'default' AS rule_id, 'all' AS scope, NULL::VARCHAR AS scope_value, {_T["match_competitor"]} AS t,
       0 AS priority, NULL::BIGINT AS e4, NULL::BIGINT AS minor
WHERE $default_rule
"""
_FILE_RULES = """
SELECT rule_id, scope, scope_value, list_position({types}, type) AS t, priority,
       CASE WHEN type IN {percent} THEN CAST(value * 10000 AS BIGINT) END AS e4,
       CASE WHEN type IN {money} THEN to_minor(value, $decimals) END AS minor
FROM {rules}
WHERE (channel IS NULL OR channel = $channel) AND coalesce(active, 'true') = 'true'
UNION ALL
"""
# How many steps one SKU can meet at most (every `all` rule, plus the most rules of one product type, of one brand,
# of one SKU), and whether any rule is scoped narrower than `all`.
_SHAPE = """
SELECT coalesce(sum(n) FILTER (scope = 'all'), 0) + coalesce(max(n) FILTER (scope = 'product_type'), 0)
       + coalesce(max(n) FILTER (scope = 'brand'), 0) + coalesce(max(n) FILTER (scope = 'sku'), 0),
       count(*) FILTER (scope <> 'all') > 0
FROM (SELECT scope, scope_value, count(*) AS n FROM ({steps}) GROUP BY ALL)
"""

# Exact integer arithmetic on non-negative minor units without HUGEINT (14x slower than BIGINT in DuckDB): x = a x 10^6
# + b, so x * f / 10^6 = a * f + b * f / 10^6, and no product leaves BIGINT for amounts up to 10^15 minor units and
# factors up to 1.01 x 10^8 (a markup of at most 10,000 %: the validation's limit).
_TIMES = "({x} // 1000000 * {f} + {x} % 1000000 * {f} // 1000000)"  # floor(x * f / 10^6)
_TIMES_HALF_UP = "({x} // 1000000 * {f} + ({x} % 1000000 * {f} + 500000) // 1000000)"  # rounded half up
_OVER_UP = "({n} // {d} * 1000000 + ({n} % {d} * 1000000 + {d} - 1) // {d})"  # ceil(n * 10^6 / d), 0 < d <= 10^6

# Per step k, from the rule (t{k}, e{k}, m{k}) and the SKU's own figures only, never the price so far: the
# competitor target of a match_competitor step (g{k}), the step's status (s{k}), its operation on the price so far
# (op{k}) and the operation's value (v{k}).
_TARGET = f"""CASE WHEN t{{k}} = {_T["match_competitor"]} THEN greatest(
    {_TIMES.format(x="comp_landed", f="(1000000 - coalesce(e{k}, undercut_e4))")} - ship_minor, 0) END"""
_MARGIN = "(1000000 - coalesce(referral_e6, 0) - e{k})"
_STATUS = f"""CASE
    WHEN t{{k}} IN ({_T["markup_percent"]}, {_T["markup_fixed"]}, {_T["cost_floor"]}) AND cost_minor IS NULL THEN 1
    WHEN t{{k}} = {_T["cost_floor"]} AND {_MARGIN} <= 0 THEN 2
    WHEN t{{k}} = {_T["match_competitor"]} AND comp_landed IS NULL THEN
        CASE WHEN $no_competitor = 'max' THEN 4 WHEN $no_competitor = 'hold' AND published_minor IS NOT NULL THEN 5
             ELSE 3 END
    WHEN t{{k}} = {_T["match_competitor"]} AND g{{k}} < min_minor THEN
        CASE WHEN $below_floor = 'max' THEN 7 WHEN $below_floor = 'hold' AND published_minor IS NOT NULL THEN 8
             ELSE 6 END
    WHEN t{{k}} IS NOT NULL THEN 0 END"""
# op: 0 keep, 1 set to v, 2 at least v, 3 at most v, 4 minus v (never below 0), 5 times (10^6 - v) / 10^6 half up
_OP = f"""CASE
    WHEN s{{k}} IS NULL OR s{{k}} IN {_SKIPPED} THEN 0
    WHEN s{{k}} IN (4, 5, 7, 8) THEN 1
    WHEN t{{k}} IN ({_T["cost_floor"]}, {_T["floor"]}) THEN 2
    WHEN t{{k}} = {_T["ceiling"]} THEN 3
    WHEN t{{k}} = {_T["discount_fixed"]} THEN 4
    WHEN t{{k}} = {_T["discount_percent"]} THEN 5
    ELSE 1 END"""
_VALUE = f"""CASE
    WHEN s{{k}} IN (4, 7) THEN max_minor
    WHEN s{{k}} IN (5, 8) THEN published_minor
    WHEN t{{k}} = {_T["markup_percent"]} THEN {_TIMES_HALF_UP.format(x="cost_minor", f="(1000000 + e{k})")}
    WHEN t{{k}} = {_T["markup_fixed"]} THEN cost_minor + m{{k}}
    WHEN t{{k}} = {_T["discount_percent"]} THEN 1000000 - e{{k}}
    WHEN t{{k}} = {_T["match_competitor"]} THEN g{{k}}
    WHEN t{{k}} = {_T["cost_floor"]} AND s{{k}} = 0 THEN
        {_OVER_UP.format(n="(cost_minor + coalesce(fixed_minor, 0))", d=_MARGIN)}
    ELSE m{{k}} END"""
_NEXT = f"""CASE op{{k}} WHEN 0 THEN p{{j}} WHEN 1 THEN v{{k}} WHEN 2 THEN greatest(p{{j}}, v{{k}})
    WHEN 3 THEN least(p{{j}}, v{{k}}) WHEN 4 THEN greatest(p{{j}} - v{{k}}, 0)
    ELSE {_TIMES_HALF_UP.format(x="p{j}", f="v{k}")} END"""
_TOKEN = f"""CASE WHEN s{{k}} IS NULL THEN NULL
    WHEN s{{k}} IN {_SKIPPED} THEN concat(id{{k}}, ':skipped(', {list(_REASONS)}[s{{k}}], ')')
    WHEN s{{k}} IN (0, 6) THEN concat(id{{k}}, ':', {{money}})
    ELSE concat(id{{k}}, ':', {{money}}, '(', {list(_REASONS)}[s{{k}}], ')') END"""


def _fold(steps: int, decimals: int) -> dict[str, str]:
    """The SQL of the fold over `steps` step positions: the per-signature columns of each position (`flat`), the
    CTEs from `priced` to `folded` (whose `rule_minor` is the price after the last step), and the final columns read
    from them (the chain's tokens, the below-floor flag, the cost floor). Only the price needs one projection per
    position (the price after step k needs the price after step k - 1); every step's status, operation and value
    are computed for all positions in one projection each."""
    ks = range(1, steps + 1)
    flat = "".join(
        f", steps[{k}].id AS id{k}, steps[{k}].t AS t{k}, steps[{k}].e4 AS e{k}, steps[{k}].minor AS m{k}" for k in ks
    )
    targets = "".join(f", {_TARGET.format(k=k)} AS g{k}" for k in ks)
    status = "".join(f", {_STATUS.format(k=k)} AS s{k}" for k in ks)
    ops = "".join(f", {_OP.format(k=k)} AS op{k}, {_VALUE.format(k=k)} AS v{k}" for k in ks)
    ctes = [
        f"targets AS (SELECT *{targets} FROM priced)",
        f"statuses AS (SELECT *{status} FROM targets)",
        f"p0 AS (SELECT *, base_minor AS p0{ops} FROM statuses)",
        *(f"p{k} AS (SELECT *, {_NEXT.format(k=k, j=k - 1)} AS p{k} FROM p{k - 1})" for k in ks),
        f"folded AS (SELECT *, p{steps} AS rule_minor FROM p{steps})",
    ]
    # The last match_competitor step says whether the competitor was below the floor; the last cost_floor step that
    # applied gives the SKU's cost floor.
    below = "".join(f"CASE WHEN t{k} = {_T['match_competitor']} THEN s{k} >= 6 END, " for k in reversed(ks))
    floor = "".join(f"CASE WHEN t{k} = {_T['cost_floor']} AND s{k} = 0 THEN v{k} END, " for k in reversed(ks))
    return {
        "flat": flat,
        "fold": ",\n".join(ctes),
        "tokens": "".join(", " + _TOKEN.format(k=k, money=f"money_text(p{k}, {int(decimals)})") for k in ks),
        "clamp": f"money_text(price_minor, {int(decimals)})",
        "below": f"coalesce({below}false)",
        "cost_floor": f"coalesce({floor}NULL)",
    }


_SQL = """
WITH items AS (
    SELECT sku, asin, fulfillment,
           to_minor(base_price, $decimals) AS base_minor,
           to_minor(min_price, $decimals) AS min_minor,
           to_minor(max_price, $decimals) AS max_minor,
           CASE WHEN fulfillment = 'FBA' THEN 0 ELSE to_minor(coalesce(shipping, 0), $decimals) END AS ship_minor,
           coalesce(undercut_percent, CAST($undercut AS DECIMAL(9,4))) AS undercut_percent,
           CAST(coalesce(undercut_percent, CAST($undercut AS DECIMAL(9,4))) * 10000 AS BIGINT) AS undercut_e4,
           to_minor(cost, $decimals) AS cost_minor, brand, product_type,
           to_minor(published_price, $decimals) AS published_minor
    FROM ({listings})
),
steps AS (
    SELECT *, CASE scope WHEN 'all' THEN 0 WHEN 'product_type' THEN 1 WHEN 'brand' THEN 2 ELSE 3 END AS scope_rank
    FROM ({steps})
),
keyed AS ({keyed}),
signatures AS (SELECT DISTINCT pt_key, brand_key, sku_key FROM keyed),
matched AS (
    SELECT s.*, r.* EXCLUDE (scope, scope_value) FROM signatures s JOIN steps r
        ON r.scope = 'all' OR (r.scope = 'product_type' AND r.scope_value = s.pt_key)
        OR (r.scope = 'brand' AND r.scope_value = s.brand_key)
    UNION ALL
    SELECT s.*, r.* EXCLUDE (scope, scope_value) FROM signatures s JOIN steps r
        ON r.scope = 'sku' AND r.scope_value = s.sku_key
),
chains AS (
    SELECT pt_key, brand_key, sku_key, competes{flat}
    FROM (SELECT pt_key, brand_key, sku_key, bool_or(t = {match}) AS competes,
                 list(struct_pack(id := rule_id, t := t, e4 := e4, minor := minor)
                      ORDER BY priority, scope_rank, rule_id) AS steps
          FROM matched GROUP BY ALL)
),
ranked AS (
    SELECT o.asin, o.seller_id, o.fulfillment,
           to_minor(o.price, $decimals) + to_minor(o.shipping, $decimals) AS landed_minor,
           row_number() OVER (
               PARTITION BY o.asin
               ORDER BY to_minor(o.price, $decimals) + to_minor(o.shipping, $decimals), o.fulfillment = 'FBA' DESC,
                        o.seller_id
           ) AS rank
    FROM ({offers}) o
    WHERE o.seller_id <> $seller_id
      AND o.observed_at >= CAST($fresh_since AS TIMESTAMPTZ)
      AND ($compete_with <> 'fba_only' OR o.fulfillment = 'FBA')
      AND ($compete_with <> 'featured' OR coalesce(o.is_featured_merchant, true))
      AND ($min_rating IS NULL OR o.feedback_rating IS NULL OR o.feedback_rating >= CAST($min_rating AS DECIMAL(6,2)))
      AND ($min_count IS NULL OR o.feedback_count IS NULL OR o.feedback_count >= $min_count)
      AND NOT list_contains(CAST($exclude AS VARCHAR[]), o.seller_id)
      AND (len(CAST($include AS VARCHAR[])) = 0 OR list_contains(CAST($include AS VARCHAR[]), o.seller_id))
      AND o.asin IN (SELECT asin FROM items)
),
best AS (SELECT * FROM ranked WHERE rank = 1),
priced AS (
    SELECT k.*, c.* EXCLUDE (pt_key, brand_key, sku_key, competes), coalesce(c.competes, false) AS competes,
           b.seller_id AS comp_seller, b.fulfillment AS comp_fulfillment, b.landed_minor AS comp_landed,
           {fee_columns}
    FROM keyed k
    LEFT JOIN chains c ON {chain_join}
    LEFT JOIN best b ON b.asin = k.asin
    {fee_join}
),
{fold},
clamped AS (SELECT *, greatest(min_minor, least(max_minor, rule_minor)) AS price_minor FROM folded)
SELECT sku, asin, fulfillment, base_minor, min_minor, max_minor, ship_minor, price_minor,
       CASE WHEN competes AND comp_landed IS NULL THEN 'no_competitor'
            WHEN rule_minor < min_minor OR {below} THEN 'at_floor'
            WHEN rule_minor > max_minor THEN 'at_ceiling'
            WHEN price_minor = base_minor THEN 'unchanged'
            WHEN competes THEN 'undercut'
            ELSE 'repriced' END AS outcome,
       CASE WHEN competes THEN comp_seller END AS competitor_seller_id,
       CASE WHEN competes THEN comp_fulfillment END AS competitor_fulfillment,
       CASE WHEN competes THEN comp_landed END AS competitor_landed_minor,
       undercut_percent,
       concat_ws(' > '{tokens}, CASE WHEN price_minor <> rule_minor THEN 'clamp:' || {clamp} END) AS rule_chain,
       {cost_floor} AS cost_floor_minor,
       referral_rate,
       fixed_fee_minor
FROM clamped
"""
# Without narrower scopes every SKU meets the same steps: no per-SKU key, one chain for all.
_KEYED = """
SELECT i.*,
       CASE WHEN product_type IN (SELECT scope_value FROM steps WHERE scope = 'product_type') THEN product_type
       END AS pt_key,
       CASE WHEN brand IN (SELECT scope_value FROM steps WHERE scope = 'brand') THEN brand END AS brand_key,
       CASE WHEN sku IN (SELECT scope_value FROM steps WHERE scope = 'sku') THEN sku END AS sku_key
FROM items i
"""
_UNKEYED = "SELECT *, NULL::VARCHAR AS pt_key, NULL::VARCHAR AS brand_key, NULL::VARCHAR AS sku_key FROM items"
_CHAIN_JOIN = (
    "c.pt_key IS NOT DISTINCT FROM k.pt_key AND c.brand_key IS NOT DISTINCT FROM k.brand_key "
    "AND c.sku_key IS NOT DISTINCT FROM k.sku_key"
)
_FEE_COLUMNS = (
    "CAST(f.referral_rate * 1000000 AS BIGINT) AS referral_e6, CAST(f.referral_rate AS DECIMAL(9,6)) AS referral_rate, "
    "CAST(f.fixed_fee_minor AS BIGINT) AS fixed_minor, CAST(f.fixed_fee_minor AS BIGINT) AS fixed_fee_minor"
)
_NO_FEE_COLUMNS = (
    "NULL::BIGINT AS referral_e6, NULL::DECIMAL(9,6) AS referral_rate, NULL::BIGINT AS fixed_minor, "
    "NULL::BIGINT AS fixed_fee_minor"
)


def _with_optional(con: duckdb.DuckDBPyConnection, relation: str, optional: dict[str, str]) -> str:
    """A SELECT over `relation` with every optional column present (NULL where the relation has none)."""
    present = {row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()}
    missing = [f"NULL::{sql_type} AS {name}" for name, sql_type in optional.items() if name not in present]
    return f"SELECT *{''.join(', ' + m for m in missing)} FROM {relation}"


def price_with_rules(
    con: duckdb.DuckDBPyConnection,
    listings: str,
    offers: str,
    rules: str | None,
    fees: str | None,
    *,
    seller_id: str,
    channel: str,
    decimals: int,
    pricing: Pricing,
    now: datetime,
) -> duckdb.DuckDBPyRelation:
    """Price every listing with the channel's rules; the relation names are visible to `con`, which must have the
    money macros (`pricing.money.install_money_macros`).

    `listings`: sku, asin, fulfillment, base_price, min_price, max_price, shipping, undercut_percent, and optionally
    cost, brand, product_type, published_price (the price Amazon last accepted; NULL: none yet).
    `offers`: asin, seller_id, price, shipping, fulfillment, observed_at, and optionally is_featured_merchant,
    feedback_rating, feedback_count (a filter keeps an offer whose figure is unknown).
    `rules`: a validated `pricing_rules` table (None: no rules file). `fees`: sku, referral_rate, fixed_fee_minor
    (None: no fee estimates).

    One row per listing: the `pricing.buybox` columns plus rule_chain, cost_floor_minor, referral_rate and
    fixed_fee_minor. The statement is built for the rules' shape (how many steps a SKU can meet), so call it again
    when the rules change.
    """
    steps = _DEFAULT_RULE
    if rules is not None:
        steps = (
            _FILE_RULES.format(types=list(RULE_TYPES), percent=PERCENT_TYPES, money=MONEY_TYPES, rules=rules) + steps
        )
    params = {
        "decimals": decimals,
        "undercut": str(pricing.undercut_percent),
        "seller_id": seller_id,
        "channel": channel,
        "fresh_since": (now - timedelta(hours=pricing.freshness_hours)).isoformat(),
        "compete_with": pricing.compete_with,
        "min_rating": None if pricing.min_feedback_rating is None else str(pricing.min_feedback_rating),
        "min_count": pricing.min_feedback_count,
        "exclude": list(pricing.exclude_sellers),
        "include": list(pricing.include_sellers),
        "no_competitor": pricing.no_competitor,
        "below_floor": pricing.below_floor,
        "default_rule": pricing.default_rule,
    }
    shape = _SHAPE.format(steps=steps)
    most, scoped = con.execute(shape, _used(params, shape)).fetchall()[0]
    sql = _SQL.format(
        listings=_with_optional(con, listings, _OPTIONAL_LISTING),
        offers=_with_optional(con, offers, _OPTIONAL_OFFER),
        steps=steps,
        keyed=_KEYED if scoped else _UNKEYED,
        chain_join=_CHAIN_JOIN if scoped else "true",
        match=_T["match_competitor"],
        fee_columns=_NO_FEE_COLUMNS if fees is None else _FEE_COLUMNS,
        fee_join=""
        if fees is None
        else f"LEFT JOIN (SELECT sku, referral_rate, fixed_fee_minor FROM {fees}) f USING (sku)",
        **_fold(int(most), decimals),
    )
    return con.sql(sql, params=_used(params, sql))


def _used(params: dict, sql: str) -> dict:
    """The parameters `sql` uses: DuckDB refuses one it does not ($channel without a rules file)."""
    return {name: value for name, value in params.items() if f"${name}" in sql}
