"""Which quantity each mapped SKU should carry on a channel: the FBA/FBM conflict rules.

FBA stock is physically in Amazon's warehouses, so Amazon is the truth (`channel_wins`): its fulfillable quantity
becomes the master's figure for that SKU, and no quantity is ever sent for it. Merchant-fulfilled (FBM) stock is the
seller's own (`master_wins`): the master quantity, never below 0, is what Amazon should show. An explicit
`conflict_strategy` on a mapping overrides the default; a quantity is published only for FBM + master_wins, because
Amazon owns the count in every other case.

Open FBM orders reserve stock until the seller's master file reflects them (see `sync.orders`): with a
`reservations` relation (sku, reserved_quantity) a master-sourced quantity is the master quantity minus the SKU's
open reservations, never below 0, so nothing is oversold before the next push. The relation holds the open orders of
ALL the seller's channels (the stock is the seller's), so every channel of the seller gets the same figure.

A published (FBM, master_wins) quantity then goes through the channel's allocation (`seller.config.Allocation`, and the
mapping's own `safety_buffer`, `allocation_percent`, `max_quantity` where the row fills them in): available = master
minus reservations, never below 0; minus the safety buffer, never below 0; times the percentage, rounded down to a
whole unit with integer arithmetic (hundredths of a percent: no float ever); at most the cap. FBA and channel_wins
quantities are Amazon's and never sent, so allocation leaves them alone.

A mapping whose SKU is not in the master has no quantity and no base price: it is left out here, and reported as a
warning in `input_errors` (`seller.inputs.unknown_skus`) and as `master_missing` in `sync_history`.
"""

from __future__ import annotations

import duckdb

from seller.config import Allocation

__all__ = ["reconcile"]

_SQL = """
WITH joined AS (
    SELECT m.channel, m.sku, m.asin, m.fulfillment,
           coalesce(m.conflict_strategy, CASE WHEN m.fulfillment = 'FBA' THEN 'channel_wins' ELSE 'master_wins' END)
               AS conflict_strategy,
           inv.quantity AS master_quantity, f.fulfillable_quantity AS channel_quantity, inv.handling_time_days,
           coalesce(r.reserved_quantity, 0) AS reserved_quantity,
           coalesce({buffer}, {channel_buffer}) AS safety_buffer,
           coalesce({basis_points}, {channel_basis_points}) AS basis_points,
           coalesce({cap}, {channel_cap}) AS max_quantity
    FROM {mappings} m
    JOIN {master} inv ON inv.sku = m.sku
    LEFT JOIN {fba} f ON f.sku = m.sku
    LEFT JOIN (SELECT sku, sum(reserved_quantity) AS reserved_quantity FROM {reservations} GROUP BY sku) r
        ON r.sku = m.sku
    WHERE m.asin IS NOT NULL
),
decided AS (
    SELECT *, conflict_strategy = 'channel_wins' AND channel_quantity IS NOT NULL AS channel_won,
           fulfillment = 'FBM' AND conflict_strategy = 'master_wins' AS publish_quantity
    FROM joined
),
available AS (
    SELECT *,
           CASE WHEN channel_won THEN channel_quantity ELSE greatest(master_quantity - reserved_quantity, 0) END
               AS available_quantity,
           greatest(available_quantity - safety_buffer, 0) * basis_points // 10000 AS shared
    FROM decided
)
SELECT channel, sku, asin, fulfillment, conflict_strategy, master_quantity, channel_quantity,
       CASE WHEN NOT publish_quantity THEN available_quantity
            WHEN max_quantity IS NULL THEN shared
            ELSE least(shared, max_quantity) END AS quantity,
       CASE WHEN channel_won THEN 'channel' ELSE 'master' END AS quantity_source,
       channel_won AND channel_quantity <> master_quantity AS master_updated,
       publish_quantity,
       handling_time_days,
       CASE WHEN channel_won THEN 0 ELSE reserved_quantity END AS reserved_quantity,
       available_quantity
FROM available
"""

# The mapping's own allocation columns, when the relation has them (a blank cell: the channel's setting).
_OVERRIDES = {
    "buffer": ("safety_buffer", "m.safety_buffer::BIGINT"),
    "basis_points": ("allocation_percent", "(m.allocation_percent * 100)::BIGINT"),
    "cap": ("max_quantity", "m.max_quantity::BIGINT"),
}


_NO_RESERVATIONS = "(SELECT NULL::VARCHAR AS sku, 0::BIGINT AS reserved_quantity WHERE false)"


def reconcile(
    con: duckdb.DuckDBPyConnection,
    mappings: str,
    master: str,
    fba: str,
    reservations: str | None = None,
    allocation: Allocation | None = None,
) -> duckdb.DuckDBPyRelation:
    """One row per mapped SKU (a mapping with an ASIN whose SKU is in the master; the others are reported by the
    input validation and sync_history, not here).

    Adds `quantity` (what the channel should show), `quantity_source` (`channel` when Amazon's figure won),
    `master_updated` (Amazon's figure differs from the master's: the master takes it), `publish_quantity` and
    `reserved_quantity` (units held by open orders, subtracted from a master-sourced quantity; 0 when Amazon's
    figure won). `reservations`: an optional relation with columns sku, reserved_quantity: the seller's open orders on
    every channel, not only this one's. `allocation`: the channel's settings (default: show everything available),
    overridden per SKU by the mapping's `safety_buffer`, `allocation_percent` and `max_quantity` columns where the
    relation has them and the cell is not NULL; `quantity` of a published SKU is then the allocated figure and
    `available_quantity` the figure before allocation (for the others both are the same).
    """
    allocation = allocation or Allocation()
    present = set(con.sql(f"SELECT * FROM {mappings}").columns)
    overrides = {key: expr if column in present else "NULL" for key, (column, expr) in _OVERRIDES.items()}
    return con.sql(
        _SQL.format(
            mappings=mappings,
            master=master,
            fba=fba,
            reservations=reservations or _NO_RESERVATIONS,
            **overrides,
            # Validated whole numbers from the channels config (never seller file values).
            channel_buffer=int(allocation.safety_buffer),
            channel_basis_points=int(allocation.basis_points),
            channel_cap="NULL::BIGINT" if allocation.max_quantity is None else int(allocation.max_quantity),
        )
    )
