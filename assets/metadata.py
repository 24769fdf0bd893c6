"""Metadata shown in the Dagster UI for every materialization: row counts, previews, files."""

from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

__all__ = ["preview", "table_preview", "file_metadata"]

PREVIEW_ROWS = 10


def preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows as a markdown table."""
    return dg.MetadataValue.md(
        table.slice(0, rows).to_pandas().to_markdown(index=False) if table.num_rows else "_empty_"
    )


def table_preview(con: duckdb.DuckDBPyConnection, table: str, order_by: str = "sku") -> dict[str, dg.MetadataValue]:
    count = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    head = con.sql(f"SELECT * FROM {table} ORDER BY {order_by} LIMIT {PREVIEW_ROWS}").to_arrow_table()
    return {"dagster/row_count": dg.MetadataValue.int(count), "preview": preview(head)}


def file_metadata(paths: list[Path]) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {
        "files": dg.MetadataValue.int(len(paths)),
        "bytes": dg.MetadataValue.int(sum(p.stat().st_size for p in paths)),
    }
    if len(paths) == 1:
        meta["path"] = dg.MetadataValue.path(str(paths[0]))
    elif paths:
        meta["path"] = dg.MetadataValue.path(str(paths[0].parent))
    return meta
