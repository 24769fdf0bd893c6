"""The seller's input files: reading them exactly, and validating them row by row.

Each input is `<name>.csv` (UTF-8, comma-separated, header row) or `<name>.parquet` in the data directory. Every
value is read as text first, so nothing is silently coerced: a problem is reported with the file, the row (the header
is row 1 of a CSV file; Parquet rows count from 1), the column and the offending value. Valid rows are kept and typed
(money as DECIMAL(18,2), quantities as BIGINT, timestamps as TIMESTAMPTZ) so the UI still shows them.

A problem belongs to one channel when it sits on a row of a channel-scoped file whose `channel` is configured; every
other problem (a missing column, a master-inventory row, an unknown channel) belongs to all channels, because the
seller's data for them is in doubt. Validation is SQL over Arrow (DuckDB), one pass per rule, never a loop per row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from seller.config import Channel

__all__ = ["INPUTS", "Column", "InputSpec", "LoadedInput", "load_input", "ERROR_SCHEMA"]

# Amazon's seller SKU is at most 40 characters; tabs and line breaks would corrupt the tab-delimited feeds.
_SKU_MAX = 40
_MONEY = r"\d{1,13}(\.\d{1,2})?"
_OFFSET = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"
_TYPED = "__typed_"  # prefix of the TRY_CAST column next to each raw text column

ERROR_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("row", pa.int64()),
        ("column", pa.string()),
        ("value", pa.string()),
        ("message", pa.string()),
        ("channel", pa.string()),  # null: the problem concerns every channel
    ]
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | sku | count | money | asin | choice | percent | timestamp | channel
    required: bool = True  # the column must be present
    choices: tuple[str, ...] = ()
    may_be_empty: bool = False  # a required column whose cells may still be blank


@dataclass(frozen=True)
class InputSpec:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...]  # the grain: duplicate keys are errors
    optional_file: bool = False  # an absent file is an empty input, not an error

    @property
    def channel_scoped(self) -> bool:
        return any(c.kind == "channel" for c in self.columns)


INPUTS: dict[str, InputSpec] = {
    spec.name: spec
    for spec in (
        InputSpec(
            "master_inventory",
            (
                Column("sku", "sku"),
                Column("quantity", "count"),
                Column("price", "money"),
                Column("cost", "money", required=False),
                Column("handling_time_days", "count", required=False),
                Column("product_id", "text", required=False),
                Column("product_id_type", "choice", required=False, choices=("UPC", "EAN", "GTIN", "ISBN")),
                Column("brand", "text", required=False),
                Column("title", "text", required=False),
                Column("product_type", "text", required=False),
            ),
            unique=("sku",),
        ),
        InputSpec(
            "channel_mappings",
            (
                Column("channel", "channel"),
                Column("sku", "sku"),
                Column("asin", "asin", may_be_empty=True),  # blank: not listed on this channel (mapping_missing)
                Column("fulfillment", "choice", choices=("FBA", "FBM")),
                Column("conflict_strategy", "choice", required=False, choices=("channel_wins", "master_wins")),
                Column("min_price", "money"),
                Column("max_price", "money"),
                Column("shipping", "money", required=False),
                Column("undercut_percent", "percent", required=False),
            ),
            unique=("channel", "sku"),
        ),
        InputSpec(
            "competitor_prices",
            (
                Column("channel", "channel"),
                Column("asin", "asin"),
                Column("seller_id", "text"),
                Column("price", "money"),
                Column("shipping", "money"),
                Column("fulfillment", "choice", choices=("FBA", "FBM")),
                Column("observed_at", "timestamp"),
            ),
            unique=(),
            optional_file=True,
        ),
        InputSpec(
            "fba_inventory",
            (Column("channel", "channel"), Column("sku", "sku"), Column("fulfillable_quantity", "count")),
            unique=("channel", "sku"),
            optional_file=True,
        ),
    )
}

# Validated like INPUTS but not one input asset each: their own assets read them (assets/shipments.py).
SIDE_INPUTS: dict[str, InputSpec] = {
    "shipments": InputSpec(
        "shipments",
        (
            Column("channel", "channel"),
            Column("order_id", "text"),  # Amazon order id, 3-7-7 digits
            Column("carrier_code", "text"),  # Amazon's carrier code (UPS, USPS, FedEx, DHL, ...) or Other
            Column("carrier_name", "text", required=False),  # required by Amazon when carrier_code is Other
            Column("tracking_number", "text"),
            Column("ship_date", "timestamp"),
            Column("shipping_method", "text", required=False),
        ),
        unique=("channel", "order_id"),
        optional_file=True,
    ),
}

_SQL_TYPE = {
    "count": "BIGINT",
    "money": "DECIMAL(18,2)",
    "percent": "DECIMAL(9,4)",
    "timestamp": "TIMESTAMPTZ",
}


@dataclass
class LoadedInput:
    """One input file after validation: the valid rows (typed) and every problem found."""

    spec: InputSpec
    path: Path | None
    valid: pa.Table
    errors: pa.Table

    def errors_for(self, channel: str) -> pa.Table:
        """Problems that block `channel`: its own rows' problems and every problem not tied to one channel."""
        ch = self.errors.column("channel")
        mask = pa.compute.or_kleene(pa.compute.is_null(ch), pa.compute.equal(ch, channel))
        return self.errors.filter(mask)


def find_input(data_dir: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = data_dir / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def load_input(name: str, data_dir: str | Path, channels: dict[str, Channel]) -> LoadedInput:
    """Read and validate the input file `name` from `data_dir` against the configured channels."""
    spec = INPUTS[name] if name in INPUTS else SIDE_INPUTS[name]
    path = find_input(Path(data_dir), name)
    problems: list[dict] = []
    raw: pa.Table | None = None
    if path is None:
        if not spec.optional_file:
            problems.append(_problem(f"{name}.csv", 0, "", "", f"file missing: expected {name}.csv or {name}.parquet"))
    else:
        raw = _read(path, problems)
    if raw is not None:
        missing = [c.name for c in spec.columns if c.required and c.name not in raw.column_names]
        for column in missing:
            problems.append(_problem(path.name, 1, column, "", f"missing required column {column!r}"))
        if missing:
            raw = None
    if raw is None:
        return LoadedInput(spec, path, _empty_valid(spec), _errors_table(problems))
    valid, row_errors = _validate(spec, path.name, raw, channels)
    errors = pa.concat_tables([_errors_table(problems), row_errors]) if problems else row_errors
    return LoadedInput(spec, path, valid, errors)


def _problem(file: str, row: int, column: str, value: str, message: str, channel: str | None = None) -> dict:
    return {"file": file, "row": row, "column": column, "value": value, "message": message, "channel": channel}


def _errors_table(problems: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(problems, schema=ERROR_SCHEMA)


def _read(path: Path, problems: list[dict]) -> pa.Table | None:
    """All columns as text plus `_row`, or None after recording a file-level problem."""
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable Parquet file is the seller's to fix
            problems.append(_problem(path.name, 0, "", "", f"not a readable Parquet file: {exc}"))
            return None
        columns = {n: pa.compute.cast(table.column(n), pa.string()) for n in table.column_names}
        columns["_row"] = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
        return pa.table(columns)
    return _read_csv(path, problems)


def _read_csv(path: Path, problems: list[dict]) -> pa.Table | None:
    data = path.read_bytes()
    if not data or data.isspace():
        problems.append(_problem(path.name, 0, "", "", "file is empty: expected a header row"))
        return None
    body = memoryview(data)[3:] if data.startswith(b"\xef\xbb\xbf") else memoryview(data)  # Excel's UTF-8 BOM
    end = data.find(b"\n")
    try:
        first = bytes(body[: end - (len(data) - len(body))] if end >= 0 else body).decode("utf-8")
    except UnicodeDecodeError:
        return _not_utf8(path, data, problems)
    header = [h.strip() for h in next(csv.reader([first.rstrip("\r")]))]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        problems.append(_problem(path.name, 1, dupes[0], "", f"duplicate column {dupes[0]!r} in the header"))
        return None
    try:
        table = _parse_csv(body, header, path.name, problems, threads=True)
        if table is None and not problems:
            table = _parse_csv(body, header, path.name, problems, threads=False)
    except UnicodeError:
        return _not_utf8(path, data, problems)
    return table


def _not_utf8(path: Path, data: bytes, problems: list[dict]) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        value = repr(data[exc.start : exc.start + 8])
        problems.append(_problem(path.name, line, "", value, "not UTF-8 text (save the file as UTF-8)"))
    return None


def _parse_csv(body: memoryview, header: list[str], file: str, problems: list[dict], threads: bool) -> pa.Table | None:
    """Parse the CSV body; with `threads` it gives up (None) at the first malformed row, whose number it can't know."""
    skipped: list[int] = []
    malformed = False

    def bad_row(row: pacsv.InvalidRow) -> str:
        nonlocal malformed
        if threads:
            malformed = True
            return "skip"
        skipped.append(row.number)
        problems.append(
            _problem(
                file,
                row.number or 0,
                "",
                row.text[:80],
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
            )
        )
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pacsv.ReadOptions(use_threads=threads, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=bad_row),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "utf8" in str(exc).lower():
            raise UnicodeError(str(exc)) from None
        problems.append(_problem(file, 0, "", "", f"not a readable CSV file: {exc}"))
        return None
    if malformed:
        return None
    # Row numbers count the header as row 1, skipping the rows that could not be parsed.
    total = table.num_rows + len(skipped)
    numbers = np.arange(2, total + 2, dtype=np.int64)
    if skipped:
        numbers = numbers[~np.isin(numbers, np.array(skipped, dtype=np.int64))]
    return table.append_column("_row", pa.array(numbers))


def _empty_valid(spec: InputSpec) -> pa.Table:
    con = duckdb.connect()
    cols = ", ".join(f"NULL::{_SQL_TYPE.get(c.kind, 'VARCHAR')} AS {c.name}" for c in spec.columns)
    table = con.sql(f"SELECT {cols}, NULL::BIGINT AS _row LIMIT 0").to_arrow_table()
    con.close()
    return table


def _rules(spec: InputSpec, present: set[str]) -> list[tuple[str, str, str]]:
    """(column, SQL condition that is TRUE for a bad value, message) for every check of this input."""
    rules: list[tuple[str, str, str]] = []
    for col in spec.columns:
        if col.name not in present:
            continue
        c = f'"{col.name}"'
        if col.required and not col.may_be_empty:
            rules.append((col.name, f"trim({c}) = ''", "required value is empty"))
        filled = f"trim({c}) <> '' AND "
        if col.kind == "sku":
            rules.append(
                (
                    col.name,
                    f"regexp_matches({c}, '[\\x00-\\x1f\\x7f]')",
                    "SKU contains a tab, line break or control character",
                )
            )
            rules.append((col.name, f"length({c}) > {_SKU_MAX}", f"SKU longer than {_SKU_MAX} characters"))
            rules.append((col.name, f"{c} <> trim({c})", "SKU has leading or trailing spaces"))
        elif col.kind == "count":
            rules.append(
                (col.name, filled + f"regexp_full_match(trim({c}), '-\\d+')", "negative quantity (must be ≥ 0)")
            )
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match(trim({c}), '-?\\d{{1,12}}')",
                    "not a whole number",
                )
            )
        elif col.kind == "money":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match(trim({c}), '{_MONEY}')",
                    "not a price: a non-negative decimal with at most 2 decimals and no currency sign",
                )
            )
            if spec.channel_scoped:
                rules.append(
                    (
                        col.name,
                        filled + f"_decimals = 0 AND regexp_full_match(trim({c}), '\\d+\\.\\d*[1-9]\\d*')",
                        "this channel's currency has no minor unit: use a whole number",
                    )
                )
        elif col.kind == "percent":
            rules.append(
                (
                    col.name,
                    filled + f"NOT (regexp_full_match(trim({c}), '\\d{{1,2}}(\\.\\d{{1,4}})?'))",
                    "not a percentage in [0, 100) with at most 4 decimals",
                )
            )
        elif col.kind == "asin":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match(trim({c}), '[0-9A-Z]{{10}}')",
                    "ASIN must be 10 characters A-Z/0-9",
                )
            )
        elif col.kind == "choice":
            allowed = ", ".join(f"'{v}'" for v in col.choices)
            rules.append(
                (col.name, filled + f"trim({c}) NOT IN ({allowed})", f"must be one of {', '.join(col.choices)}")
            )
        elif col.kind == "timestamp":
            rules.append(
                (
                    col.name,
                    filled + f"(NOT regexp_matches(trim({c}), '{_OFFSET}') OR \"{_TYPED}{col.name}\" IS NULL)",
                    "not an ISO 8601 timestamp with a UTC offset (e.g. 2026-11-29T10:00:00+00:00)",
                )
            )
        elif col.kind == "channel":
            rules.append((col.name, filled + "_decimals IS NULL", "unknown channel (not in the channels config)"))
    if {"min_price", "max_price"} <= present:
        rules.append(
            (
                "min_price",
                f'"{_TYPED}min_price" > "{_TYPED}max_price"',
                "min_price is greater than max_price",
            )
        )
    return rules


def _literal(text: str) -> str:
    """A constant message as a SQL string literal (rule texts are ours; seller values are never formatted in)."""
    return "'" + text.replace("'", "''") + "'"


def _validate(spec: InputSpec, file: str, raw: pa.Table, channels: dict[str, Channel]) -> tuple[pa.Table, pa.Table]:
    con = duckdb.connect()
    con.execute("SET memory_limit = '1GB'").fetchall()
    con.register("raw", raw)
    known = pa.table({"name": [c.name for c in channels.values()], "decimals": [c.decimals for c in channels.values()]})
    con.register("known_channels", known)
    present = set(raw.column_names)
    typed = {
        c.name: f"TRY_CAST(NULLIF(trim(\"{c.name}\"), '') AS {_SQL_TYPE.get(c.kind, 'VARCHAR')})"
        if c.name in present
        else f"CAST(NULL AS {_SQL_TYPE.get(c.kind, 'VARCHAR')})"
        for c in spec.columns
    }
    casts = ", ".join(f'{expr} AS "{_TYPED}{name}"' for name, expr in typed.items())
    if spec.channel_scoped:
        source = "raw r LEFT JOIN known_channels k ON k.name = trim(r.channel)"
        extra = "k.decimals AS _decimals, k.name AS _channel"
    else:
        source, extra = "raw r", "2 AS _decimals, NULL::VARCHAR AS _channel"
    con.execute(f"CREATE TEMP VIEW checked AS SELECT r.*, {extra}, {casts} FROM {source}")
    rules = _rules(spec, present)
    bad = " OR ".join(f"coalesce({condition}, false)" for _, condition, _ in rules) or "false"
    # One pass types every value and flags the (normally few) bad rows; only those are expanded into problems.
    out = ", ".join(f'"{_TYPED}{c.name}" AS "{c.name}"' for c in spec.columns)
    con.execute(f"CREATE TEMP TABLE typed AS SELECT {out}, _row, ({bad}) AS _bad FROM checked")
    con.execute("CREATE TEMP TABLE flagged AS SELECT * FROM checked WHERE _row IN (SELECT _row FROM typed WHERE _bad)")
    checks = [
        f'SELECT _row AS row, \'{column}\' AS "column", "{column}" AS value, {_literal(message)} AS message, _channel '
        f"FROM flagged WHERE {condition}"
        for column, condition, message in rules
    ]
    if spec.unique:
        key = ", ".join(f'"{k}"' for k in spec.unique)
        checks.append(
            f"SELECT _row, '{spec.unique[-1]}', concat_ws('/', {key}), "
            f"'duplicate {'/'.join(spec.unique)} (first seen on row ' || first_row || ')', _channel "
            f"FROM (SELECT r.*, d.first_row, {extra} FROM {source} JOIN "
            f"(SELECT {key}, min(_row) AS first_row FROM raw GROUP BY ALL HAVING count(*) > 1) d USING ({key})) "
            "WHERE _row > first_row"
        )
    con.execute(
        'CREATE TEMP TABLE problems AS SELECT DISTINCT ON (row, "column") * FROM ('
        + " UNION ALL ".join(checks)
        + ') ORDER BY row, "column"'
    )
    errors = con.sql(
        f"SELECT '{file}' AS file, row, \"column\", value, message, _channel AS channel FROM problems ORDER BY row"
    ).to_arrow_table()
    keep = "WHERE NOT _bad AND _row NOT IN (SELECT row FROM problems)" if errors.num_rows else ""
    valid = con.sql(f"SELECT * EXCLUDE (_bad) FROM typed {keep}").to_arrow_table()
    con.close()
    return valid, errors.cast(ERROR_SCHEMA)
