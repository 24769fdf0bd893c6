"""Which quantity each mapped SKU should carry on a channel: the FBA/FBM conflict rules.

FBA stock is physically in Amazon's warehouses, so Amazon is the truth (`channel_wins`): its fulfillable quantity
becomes the master's figure for that SKU, and no quantity is ever sent for it. Merchant-fulfilled (FBM) stock is the
seller's own (`master_wins`): the master quantity, never below 0, is what Amazon should show. An explicit
`conflict_strategy` on a mapping overrides the default; a quantity is published only for FBM + master_wins, because
Amazon owns the count in every other case.
"""

from __future__ import annotations

import duckdb

__all__ = ["reconcile"]

_SQL = """
WITH joined AS (
    SELECT m.channel, m.sku, m.asin, m.fulfillment,
           coalesce(m.conflict_strategy, CASE WHEN m.fulfillment = 'FBA' THEN 'channel_wins' ELSE 'master_wins' END)
               AS conflict_strategy,
           inv.quantity AS master_quantity, f.fulfillable_quantity AS channel_quantity, inv.handling_time_days
    FROM {mappings} m
    JOIN {master} inv ON inv.sku = m.sku
    LEFT JOIN {fba} f ON f.sku = m.sku
    WHERE m.asin IS NOT NULL
),
decided AS (
    SELECT *, conflict_strategy = 'channel_wins' AND channel_quantity IS NOT NULL AS channel_won FROM joined
)
SELECT channel, sku, asin, fulfillment, conflict_strategy, master_quantity, channel_quantity,
       CASE WHEN channel_won THEN channel_quantity ELSE greatest(master_quantity, 0) END AS quantity,
       CASE WHEN channel_won THEN 'channel' ELSE 'master' END AS quantity_source,
       channel_won AND channel_quantity <> master_quantity AS master_updated,
       fulfillment = 'FBM' AND conflict_strategy = 'master_wins' AS publish_quantity,
       handling_time_days
FROM decided
"""


def reconcile(con: duckdb.DuckDBPyConnection, mappings: str, master: str, fba: str) -> duckdb.DuckDBPyRelation:
    """One row per mapped SKU (a mapping with an ASIN whose SKU is in the master).

    Adds `quantity` (what the channel should show), `quantity_source` (`channel` when Amazon's figure won),
    `master_updated` (Amazon's figure differs from the master's: the master takes it) and `publish_quantity`.
    """
    return con.sql(_SQL.format(mappings=mappings, master=master, fba=fba))
