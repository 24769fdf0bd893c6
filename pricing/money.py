"""Exact money in SQL: amounts are DECIMAL(18,2) at the edges and integer minor units (cents, whole yen) inside.

Never a binary float: DuckDB turns DECIMAL / INTEGER into DOUBLE, so these macros only multiply and use integer
division, and render text from integers.
"""

from __future__ import annotations

import duckdb

__all__ = ["install_money_macros"]

_MACROS = (
    # amount (DECIMAL) -> minor units, rounded down to the currency's minor unit (JPY has none: decimals = 0)
    "CREATE OR REPLACE TEMP MACRO to_minor(amount, decimals) AS "
    "CAST(floor(amount * CASE WHEN decimals = 0 THEN 1 ELSE 100 END) AS BIGINT)",
    # minor units -> DECIMAL(18,2) amount (exact: integer times 0.01)
    "CREATE OR REPLACE TEMP MACRO from_minor(minor, decimals) AS "
    "CAST(CAST(minor AS DECIMAL(18,0)) * CASE WHEN decimals = 0 THEN 1.00 ELSE 0.01 END AS DECIMAL(18,2))",
    # minor units -> the text Amazon expects: '19.99', or '1999' for JPY (a DECIMAL cast: exact, and several times
    # faster than printf over a million rule chains)
    "CREATE OR REPLACE TEMP MACRO money_text(minor, decimals) AS CASE WHEN decimals = 0 THEN CAST(minor AS VARCHAR) "
    "ELSE CAST(CAST(CAST(minor AS DECIMAL(18,0)) * 0.01 AS DECIMAL(18,2)) AS VARCHAR) END",
)


def install_money_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define `to_minor`, `from_minor` and `money_text` on this connection (TEMP: nothing is stored in the database,
    so a read-only connection gets them too and a DuckLake, which stores no macros, needs none)."""
    for sql in _MACROS:
        con.execute(sql)
