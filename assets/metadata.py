"""Metadata shown in the Dagster UI for every materialization: row counts, previews, files."""

import dagster as dg
import duckdb
import pyarrow as pa

from feeds.store import StoredFile

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


def file_metadata(files: list[StoredFile]) -> dict[str, dg.MetadataValue]:
    """Count, bytes and location (the folder when several) of stored feed documents."""
    meta: dict[str, dg.MetadataValue] = {
        "files": dg.MetadataValue.int(len(files)),
        "bytes": dg.MetadataValue.int(sum(f.size for f in files)),
    }
    if len(files) == 1:
        meta["path"] = dg.MetadataValue.path(files[0].location)
    elif files:
        meta["path"] = dg.MetadataValue.path(files[0].location.rsplit("/", 1)[0])
    return meta
