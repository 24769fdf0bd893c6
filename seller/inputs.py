"""The seller's input files: reading them exactly, and validating them row by row.

Each input is `<name>.csv` (UTF-8, comma-separated, header row) or `<name>.parquet` in the data directory. Every
value is read as text first, so nothing is silently coerced: a problem is reported with the file, the row (the header
is row 1 of a CSV file; Parquet rows count from 1), the column and the offending value. Valid rows are kept and typed
(money as DECIMAL(18,2), quantities as BIGINT, timestamps as TIMESTAMPTZ) so the UI still shows them.

A problem belongs to one channel when it sits on a row of a channel-scoped file whose `channel` is configured; every
other problem (a missing column, a master-inventory row, an unknown channel) belongs to all channels, because the
seller's data for them is in doubt. Validation is SQL (DuckDB): one scan types every value and flags the bad rows,
never a loop per row.

Every problem has a severity. An `error` blocks (the row is dropped and nothing is published for the channels it
concerns); a `warning` does not: the row concerns only itself and the channel's other SKUs go on. The one warning is a
channel_mappings row whose SKU is not in master_inventory (`unknown_skus`): it cannot be published (no stock, no base
price) but says nothing about the rest of the seller's data.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pricing.rules import MONEY_TYPES, RULE_TYPES, SCOPES
from resources.transaction import transaction
from seller.config import Channel

__all__ = [
    "INPUTS",
    "Column",
    "InputSpec",
    "LoadedInput",
    "ValidatedInput",
    "load_input",
    "validated_input",
    "ERROR_SCHEMA",
    "ERROR",
    "WARNING",
    "NOT_IN_MASTER",
    "blocking",
    "ensure_input_errors",
    "find_input",
    "problems_for",
    "replace_input_errors",
    "unknown_skus",
]

# Amazon's seller SKU is at most 40 characters; tabs and line breaks would corrupt the tab-delimited feeds.
_SKU_MAX = 40
_SHOWN = 200  # characters of an offending value kept in input_errors
# A SKU starting with = + or @ is a spreadsheet formula (or what a spreadsheet made of one): it would be sent to Amazon
# as the listing's key and lands in the flat files the seller opens in Excel (CSV injection). SKU only: the other text
# columns never reach a feed. A leading '-' is allowed (a decision): a hyphen is an ordinary SKU character and
# refusing it would refuse real SKUs, although a spreadsheet may read '-A12' as a formula. Amazon's own SKU character
# rules were not checked for this.
_FORMULA_SKU = "SKU starts with =, + or @ (a spreadsheet formula?): write the SKU itself, as text"
_MONEY = r"\d{1,13}(\.\d{1,2})?"
_SHARE = r"(\d{1,2}(\.\d{1,2})?|100(\.0{1,2})?)"  # allocation_percent: 0-100, at most 2 decimals
_WHOLE = r"\d{1,12}"  # a valid count
_OFFSET = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"
_TYPED = "__typed_"  # prefix of the TRY_CAST column next to each raw text column
_TRIMMED = "__trimmed_"  # prefix of the trimmed copy of each raw text column

ERROR = "error"  # blocks the channels the problem concerns
WARNING = "warning"  # recorded and shown, blocks nothing
NOT_IN_MASTER = "not in master_inventory"

ERROR_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("row", pa.int64()),
        ("column", pa.string()),
        ("value", pa.string()),
        ("message", pa.string()),
        ("channel", pa.string()),  # null: the problem concerns every channel
        ("severity", pa.string()),  # ERROR or WARNING
    ]
)

# The channel warehouse's table of every input's problems (`input` names the input asset that recorded them). A
# table created before severities existed gets the column, its rows (all errors then) marked as errors.
_INPUT_ERRORS = (
    'CREATE TABLE IF NOT EXISTS input_errors (input VARCHAR, file VARCHAR, row BIGINT, "column" VARCHAR, '
    f"value VARCHAR, message VARCHAR, channel VARCHAR, severity VARCHAR DEFAULT '{ERROR}')"
)
_SEVERITY_COLUMN = f"ALTER TABLE input_errors ADD COLUMN IF NOT EXISTS severity VARCHAR DEFAULT '{ERROR}'"


def ensure_input_errors(con: duckdb.DuckDBPyConnection) -> None:
    """Create the channel's `input_errors` table, or add the `severity` column to an older one."""
    con.execute(_INPUT_ERRORS)
    con.execute(_SEVERITY_COLUMN)


def replace_input_errors(con: duckdb.DuckDBPyConnection, name: str, problems: pa.Table) -> None:
    """Input `name`'s rows of the channel's `input_errors` become `problems` (ERROR_SCHEMA). Inside the caller's
    transaction, so they change with the rows they describe."""
    con.register("problem_rows", problems)
    try:
        con.execute("DELETE FROM input_errors WHERE input = ?", [name])
        con.execute("INSERT INTO input_errors BY NAME SELECT ? AS input, * FROM problem_rows", [name])
    finally:
        con.unregister("problem_rows")


def blocking(errors: pa.Table) -> pa.Table:
    """The problems that block (severity ERROR), without the warnings."""
    return errors.filter(pa.compute.equal(errors.column("severity"), ERROR))


@dataclass(frozen=True)
class Column:
    name: str
    # text | sku | count | integer | money | decimal | asin | choice | percent | share | fraction | timestamp | channel
    kind: str
    required: bool = True  # the column must be present
    choices: tuple[str, ...] = ()
    may_be_empty: bool = False  # a required column whose cells may still be blank


@dataclass(frozen=True)
class InputSpec:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...]  # the grain: duplicate keys are errors
    optional_file: bool = False  # an absent file is an empty input, not an error
    # Columns whose effective value (a blank cell: the channel's allocation setting) must be equal on the rows of one
    # SKU on every channel of one seller and region that publishes its quantity (Amazon's unified account).
    unified: tuple[str, ...] = ()
    # Checks across columns: (column, SQL condition TRUE for a bad row, message); see `_rules` for what it may read.
    checks: tuple[tuple[str, str, str], ...] = ()

    @property
    def channel_scoped(self) -> bool:
        return any(c.kind == "channel" for c in self.columns)


def _rule_checks() -> tuple[tuple[str, str, str], ...]:
    """The pricing_rules checks across columns. A rule id is shown in `rule_chain` (`R7:21.34 > clamp:20.00`), so it
    is plain and never one of the chain's own names; a value is an amount (at most 2 decimals, whole for a currency
    without a minor unit: for a blank channel, any configured one) or a percentage, by type."""

    def t(column: str) -> str:
        return f'"{_TRIMMED}{column}"'

    def typed(column: str) -> str:
        return f'"{_TYPED}{column}"'

    money = ", ".join(f"'{name}'" for name in MONEY_TYPES)
    below_100 = "'discount_percent', 'match_competitor', 'cost_floor'"
    return (
        (
            "rule_id",
            f"{t('rule_id')} <> '' AND NOT regexp_full_match({t('rule_id')}, '[A-Za-z0-9][A-Za-z0-9_.-]{{0,39}}')",
            "a rule id is 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit",
        ),
        (
            "rule_id",
            f"lower({t('rule_id')}) IN ('default', 'clamp')",
            "reserved: 'default' and 'clamp' name steps of every rule_chain",
        ),
        ("scope_value", f"{t('scope')} = 'all' AND {t('scope_value')} <> ''", "must be blank for scope all"),
        (
            "scope_value",
            f"{t('scope')} IN ('product_type', 'brand', 'sku') AND {t('scope_value')} = ''",
            "required for this scope",
        ),
        (
            "value",
            f"{t('type')} IN ({money}) AND {typed('value')} <> round({typed('value')}, 2)",
            "an amount: at most 2 decimals",
        ),
        (
            "value",
            f"{t('type')} IN ({money}) AND _decimals = 0 AND {typed('value')} <> round({typed('value')}, 0)",
            "a currency without a minor unit (JPY) prices this rule: use a whole number",
        ),
        ("value", f"{t('type')} IN ({below_100}) AND {typed('value')} >= 100", "a percentage below 100"),
        ("value", f"{t('type')} = 'markup_percent' AND {typed('value')} > 10000", "a markup of at most 10000 %"),
    )


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
                # Allocation overrides of the channel's settings (blank: the channel's): FBM quantities only.
                Column("safety_buffer", "count", required=False),
                Column("max_quantity", "count", required=False),
                Column("allocation_percent", "share", required=False),
            ),
            unique=("channel", "sku"),
            unified=("safety_buffer", "max_quantity", "allocation_percent"),
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
        InputSpec(
            "pricing_rules",
            (
                Column("rule_id", "text"),
                Column("channel", "channel", may_be_empty=True),  # blank: every channel
                Column("scope", "choice", choices=SCOPES),
                Column("scope_value", "text", may_be_empty=True),  # blank for scope all
                Column("type", "choice", choices=RULE_TYPES),
                Column("value", "decimal"),
                Column("priority", "integer"),
                Column("active", "choice", required=False, choices=("true", "false")),
            ),
            unique=("rule_id",),
            optional_file=True,
            checks=_rule_checks(),
        ),
    )
}

# Validated like INPUTS but not one input asset each: their own assets read them (assets/shipments.py,
# assets/fees.py).
SIDE_INPUTS: dict[str, InputSpec] = {
    # The seller's own fees per SKU, overriding Amazon's estimate: the referral rate as a fraction (0.15 for 15 %),
    # the fixed part (FBA fulfilment fee, closing fee) in the channel's currency.
    "fees": InputSpec(
        "fees",
        (
            Column("channel", "channel"),
            Column("sku", "sku"),
            Column("referral_rate", "fraction"),
            Column("fixed_fee", "money"),
        ),
        unique=("channel", "sku"),
        optional_file=True,
    ),
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
    "integer": "INTEGER",
    "decimal": "DECIMAL(18,4)",
    "money": "DECIMAL(18,2)",
    "percent": "DECIMAL(9,4)",
    "share": "DECIMAL(5,2)",
    "fraction": "DECIMAL(9,6)",
    "timestamp": "TIMESTAMPTZ",
}


def problems_for(errors: pa.Table, channel: str) -> pa.Table:
    """The problems (ERROR_SCHEMA) that concern `channel`: its own rows' problems and every problem not tied to one
    channel."""
    ch = errors.column("channel")
    return errors.filter(pa.compute.or_kleene(pa.compute.is_null(ch), pa.compute.equal(ch, channel)))


class _Problems:
    errors: pa.Table

    def errors_for(self, channel: str) -> pa.Table:
        """Problems that block `channel`: its own rows' problems and every problem not tied to one channel."""
        return problems_for(self.errors, channel)


@dataclass
class ValidatedInput(_Problems):
    """One input file validated into a DuckDB connection: its valid rows are table `table`; every problem found."""

    spec: InputSpec
    path: Path | None
    table: str
    rows: int  # valid rows written to `table`
    errors: pa.Table


@dataclass
class LoadedInput(_Problems):
    """One input file after validation: the valid rows (typed) and every problem found."""

    spec: InputSpec
    path: Path | None
    valid: pa.Table
    errors: pa.Table


def find_input(data_dir: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = data_dir / f"{name}{suffix}"
        if path.exists():
            return path
    return None


# Temporary relations of one validation (connection-local; dropped when it ends).
_TEXT, _RAW, _ALL, _SCOPED, _CHECKED, _FLAGGED, _PROBLEMS = (
    "_input_text",
    "_input_raw",
    "_input_all",
    "_input_scoped",
    "_input_checked",
    "_input_flagged",
    "_input_problems",
)


@contextmanager
def validated_input(
    con: duckdb.DuckDBPyConnection,
    name: str,
    data_dir: str | Path,
    channels: dict[str, Channel],
    channel: str | None = None,
    table: str | None = None,
) -> Iterator[ValidatedInput]:
    """Validate the input file `name` straight into `con`: its valid typed rows become table `table` (default: `name`)
    with one CREATE OR REPLACE TABLE ... AS SELECT, and only the (small) problems table comes back as Arrow.

    With `channel`, a channel-scoped input keeps only that channel's rows, and rows of the other configured channels
    are not validated at all (the unified-account check only compares their allocation overrides with the channel's
    rows): `errors_for(channel)` is what validating the whole file would give. The table is written
    inside a transaction that stays open for the caller's own writes in the `with` block; it commits when the block
    ends (and rolls back if it raises).
    """
    spec = INPUTS[name] if name in INPUTS else SIDE_INPUTS[name]
    table = table or name
    path = find_input(Path(data_dir), name)
    problems: list[dict] = []
    raw: str | None = None
    try:
        if path is None:
            if not spec.optional_file:
                problems.append(
                    _problem(f"{name}.csv", 0, "", "", f"file missing: expected {name}.csv or {name}.parquet")
                )
        else:
            # autocommit: a failed fast read must not abort the transaction
            raw = _stage(con, path, problems, set(channels))
        if raw is not None:
            present = [r[0] for r in con.execute(f"DESCRIBE {raw}").fetchall()]
            missing = [c.name for c in spec.columns if c.required and c.name not in present]
            for column in missing:
                problems.append(_problem(path.name, 1, column, "", f"missing required column {column!r}"))
            if missing:
                raw = None
        # One attempt: the caller's block runs inside the transaction (at the yield) and cannot be run again.
        for attempt in transaction(con, attempts=1):
            with attempt:
                if raw is None:
                    _create_empty(con, spec, table)
                    errors = _errors_table(problems)
                else:
                    row_errors = _validate(con, spec, path.name, raw, channels, channel, table)
                    errors = pa.concat_tables([_errors_table(problems), row_errors]) if problems else row_errors
                rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
                yield ValidatedInput(spec, path, table, rows, errors)
    finally:
        con.execute(f"DROP VIEW IF EXISTS temp.{_CHECKED}")
        con.execute(f"DROP VIEW IF EXISTS temp.{_SCOPED}")
        con.execute(f"DROP VIEW IF EXISTS temp.{_ALL}")
        con.execute(f"DROP TABLE IF EXISTS temp.{_FLAGGED}")
        con.execute(f"DROP TABLE IF EXISTS temp.{_PROBLEMS}")
        if _is_view(con, _RAW):
            con.execute(f"DROP VIEW temp.{_RAW}")
        con.execute(f"DROP TABLE IF EXISTS temp.{_TEXT}")


def load_input(name: str, data_dir: str | Path, channels: dict[str, Channel]) -> LoadedInput:
    """Read and validate the input file `name` from `data_dir` against the configured channels (every channel's rows),
    the valid rows as Arrow: `validated_input` on a private in-memory database."""
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '1GB'").fetchall()
        with validated_input(con, name, data_dir, channels, table="valid_rows") as loaded:
            valid = con.sql("SELECT * FROM valid_rows").to_arrow_table()
        return LoadedInput(loaded.spec, loaded.path, valid, loaded.errors)
    finally:
        con.close()


def _is_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND temporary", [name]).fetchall()
    return bool(found[0][0])


def _problem(file: str, row: int, column: str, value: str, message: str, channel: str | None = None) -> dict:
    return {
        "file": file,
        "row": row,
        "column": column,
        "value": value,
        "message": message,
        "channel": channel,
        "severity": ERROR,
    }


def _errors_table(problems: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(problems, schema=ERROR_SCHEMA)


def _stage(
    con: duckdb.DuckDBPyConnection, path: Path, problems: list[dict], channels: Collection[str] = ()
) -> str | None:
    """Make the file's rows available in `con` as relation `_input_raw`: every column as text plus `_row`. Returns its
    name, or None after recording a file-level problem. A well-formed CSV file is read by DuckDB's parallel reader
    into a temporary table; anything else (Parquet, a malformed or unusual CSV file) through pyarrow."""
    if path.suffix == ".csv" and _stage_csv(con, path):
        return _RAW
    table = _read(path, problems, channels)
    if table is None:
        return None
    con.register(_RAW, table)
    return _RAW


def _read(path: Path, problems: list[dict], channels: Collection[str] = ()) -> pa.Table | None:
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
    return _read_csv(path, problems, channels)


def _header(first: str) -> list[str]:
    """The column names of a CSV header line (decoded, without its line break)."""
    return [h.strip() for h in next(csv.reader([first.rstrip("\r")]))]


# DuckDB's CSV reader strips spaces between a delimiter and a quote, or between a quote and a delimiter (pyarrow
# keeps them in the value); a file with a space next to a quote anywhere is read by pyarrow instead.
_SPACE_QUOTE = (b' "', b'" ')
_SCAN_CHUNK = 8 << 20


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """The common case: a well-formed CSV file read by DuckDB (all threads) into temporary table `_input_text`, and
    `_input_raw` = that table plus `_row`. False (nothing staged) for anything the exact pyarrow path must handle:
    an empty file, a header that is not plain (quotes, duplicates, non-UTF-8, one column), a space next to a quote,
    or any row DuckDB rejects (wrong field count, bad quoting, invalid UTF-8, an over-long line).

    `_row` is the record number (header = row 1): DuckDB's CSV scan of one file keeps the file's order and so does
    CREATE TABLE AS (`preserve_insertion_order`, on by default), so the table's rowid is the record index; blank lines
    are skipped, as pyarrow does.
    """
    with path.open("rb") as f:
        first = f.readline()
        if first.startswith(b"\xef\xbb\xbf"):
            first = first[3:]
        if not first.strip() or b'"' in first:
            return False
        try:
            header = _header(first.rstrip(b"\n").decode("utf-8"))
        except UnicodeDecodeError:
            return False
        if len(header) < 2 or len(set(header)) < len(header) or "_row" in header or "" in header:
            return False
        f.seek(0)
        tail = b""
        while chunk := f.read(_SCAN_CHUNK):
            window = tail + chunk
            if b'"' in window and any(s in window for s in _SPACE_QUOTE):  # most files have no quote at all
                return False
            tail = chunk[-1:]
    columns = "{" + ", ".join(f"{_literal(h)}: 'VARCHAR'" for h in header) + "}"
    text = ", ".join(f"coalesce({_ident(h)}, '') AS {_ident(h)}" for h in header)  # pyarrow: blank = ''
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_TEXT} AS SELECT {text} FROM read_csv({_literal(str(path))}, "
            f"columns = {columns}, header = true, all_varchar = true, auto_detect = false, strict_mode = true, "
            "quote = '\"', escape = '\"', delim = ',')"
        )
    except duckdb.Error:
        return False
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_RAW} AS SELECT rowid + 2 AS _row, * FROM {_TEXT}")
    return True


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_csv(path: Path, problems: list[dict], channels: Collection[str] = ()) -> pa.Table | None:
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
    header = _header(first)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        problems.append(_problem(path.name, 1, dupes[0], "", f"duplicate column {dupes[0]!r} in the header"))
        return None
    before = len(problems)
    try:
        table = _parse_csv(body, header, path.name, problems, threads=True)
        if table is None and not problems:
            table = _parse_csv(body, header, path.name, problems, threads=False)
    except UnicodeError:
        del problems[before:]  # the rows are parsed (and their problems found) again, with the bad bytes marked
        return _not_utf8_rows(path, data, body, header, problems, channels)
    if table is None and not _is_utf8(data):  # pyarrow fails on a malformed row that is not UTF-8 either
        del problems[before:]
        return _not_utf8_rows(path, data, body, header, problems, channels)
    return table


def _is_utf8(data: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=True)
    except UnicodeDecodeError:
        return False
    return True


def _not_utf8(path: Path, data: bytes, problems: list[dict]) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        value = repr(data[exc.start : exc.start + 8])
        problems.append(_problem(path.name, line, "", value, "not UTF-8 text (save the file as UTF-8)"))
    return None


# Each byte that is not UTF-8 becomes this marker while a non-UTF-8 file is parsed (one not in the file's own text).
_MARKERS = ("\ufffd", *(chr(c) for c in range(0xE000, 0xE100)))


def _not_utf8_rows(
    path: Path, data: bytes, body: memoryview, header: list[str], problems: list[dict], channels: Collection[str]
) -> pa.Table | None:
    """A file whose header is UTF-8 but some records are not: each such record is a problem naming its row and the
    (first) column holding the bad byte, scoped to the record's channel when its `channel` field is a configured
    channel (else every channel); the other records are read as usual. Without a usable marker (absurd), the whole
    file is rejected with the first bad line, as before."""
    before = len(problems)
    marker = next((m for m in _MARKERS if m.encode() not in data), None)
    if marker is None:
        return _not_utf8(path, data, problems)
    name = f"sales_channel_not_utf8_{ord(marker):x}"
    try:
        codecs.lookup_error(name)
    except LookupError:
        codecs.register_error(name, lambda exc, m=marker: (m * (exc.end - exc.start), exc.end))
    text = bytes(body).decode("utf-8", errors=name).encode("utf-8")
    table = _parse_csv(memoryview(text), header, path.name, problems, threads=True)
    if table is None and len(problems) == before:
        table = _parse_csv(memoryview(text), header, path.name, problems, threads=False)
    if table is None:
        return None
    bad = pa.array(np.zeros(table.num_rows, dtype=bool))
    for column in header:
        bad = pa.compute.or_(bad, pa.compute.match_substring(table.column(column), marker))
    flagged = table.filter(bad)
    for record in flagged.to_pylist():
        column = next(c for c in header if marker in record[c])
        owner = (record.get("channel") or "").strip()
        channel = owner if "channel" in header and marker not in owner and owner in channels else None
        value = record[column].replace(marker, "\ufffd")[:80]
        problems.append(
            _problem(
                path.name,
                record["_row"],
                column,
                value,
                "not UTF-8 text (save the file as UTF-8)",
                channel,
            )
        )
    return table.filter(pa.compute.invert(bad))


def _parse_csv(body: memoryview, header: list[str], file: str, problems: list[dict], threads: bool) -> pa.Table | None:
    """Parse the CSV body; with `threads` it gives up (None) at the first malformed row, whose number it can't know."""
    skipped: list[int] = []
    found: list[dict] = []
    malformed = False

    def bad_row(row: pacsv.InvalidRow) -> str:
        nonlocal malformed
        if threads:
            malformed = True
            return "skip"
        skipped.append(row.number)
        found.append(
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
        try:
            table = _pyarrow_csv(body, header, threads, bad_row, block_size=1 << 20)
        except pa.ArrowInvalid as exc:
            # A row longer than pyarrow's block (1 MB) "straddles two block boundaries": read the file as one block.
            if "straddl" not in str(exc):
                raise
            skipped.clear()
            found.clear()
            table = _pyarrow_csv(body, header, threads, bad_row, block_size=len(body) + 1)
    except pa.ArrowInvalid as exc:
        if "utf8" in str(exc).lower():
            raise UnicodeError(str(exc)) from None
        problems.append(_problem(file, 0, "", "", f"not a readable CSV file: {exc}"))
        return None
    problems.extend(found)
    if malformed:
        return None
    # Row numbers count the header as row 1, skipping the rows that could not be parsed.
    total = table.num_rows + len(skipped)
    numbers = np.arange(2, total + 2, dtype=np.int64)
    if skipped:
        numbers = numbers[~np.isin(numbers, np.array(skipped, dtype=np.int64))]
    return table.append_column("_row", pa.array(numbers))


def _pyarrow_csv(
    body: memoryview, header: list[str], threads: bool, bad_row: Callable[[pacsv.InvalidRow], str], block_size: int
) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(body)),
        read_options=pacsv.ReadOptions(use_threads=threads, column_names=header, skip_rows=1, block_size=block_size),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=bad_row),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.string() for h in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _shown(column: str) -> str:
    """A bad value as recorded in input_errors: at most `_SHOWN` characters (a 10 MB cell stays readable)."""
    return f'left("{column}", {_SHOWN})'


def _create_empty(con: duckdb.DuckDBPyConnection, spec: InputSpec, table: str) -> None:
    cols = ", ".join(f"NULL::{_SQL_TYPE.get(c.kind, 'VARCHAR')} AS {c.name}" for c in spec.columns)
    con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT {cols}, NULL::BIGINT AS _row LIMIT 0')


def _rules(spec: InputSpec, present: set[str]) -> list[tuple[str, str, str]]:
    """(column, SQL condition that is TRUE for a bad value, message) for every check of this input. A condition reads
    the raw text column, its trimmed copy `__trimmed_<column>` and its typed copy `__typed_<column>`, each computed
    once per row (see `_validate`)."""
    rules: list[tuple[str, str, str]] = []
    for col in spec.columns:
        if col.name not in present:
            continue
        c = f'"{col.name}"'
        t = f'"{_TRIMMED}{col.name}"'
        if col.required and not col.may_be_empty:
            rules.append((col.name, f"{t} = ''", "required value is empty"))
        filled = f"{t} <> '' AND "
        if col.kind == "sku":
            rules.append(
                (
                    col.name,
                    f"regexp_matches({c}, '[\\x00-\\x1f\\x7f]')",
                    "SKU contains a tab, line break or control character",
                )
            )
            rules.append((col.name, f"length({c}) > {_SKU_MAX}", f"SKU longer than {_SKU_MAX} characters"))
            rules.append((col.name, f"{c} <> {t}", "SKU has leading or trailing spaces"))
            rules.append((col.name, f"regexp_matches({c}, '^[=+@]')", _FORMULA_SKU))
        elif col.kind == "integer":
            rules.append((col.name, filled + f"NOT regexp_full_match({t}, '-?\\d{{1,9}}')", "not a whole number"))
        elif col.kind == "decimal":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match({t}, '\\d{{1,13}}(\\.\\d{{1,4}})?')",
                    "not a non-negative number with at most 4 decimals",
                )
            )
        elif col.kind == "count":
            rules.append((col.name, filled + f"regexp_full_match({t}, '-\\d+')", "negative quantity (must be ≥ 0)"))
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match({t}, '-?\\d{{1,12}}')",
                    "not a whole number",
                )
            )
        elif col.kind == "money":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match({t}, '{_MONEY}')",
                    "not a price: a non-negative decimal with at most 2 decimals and no currency sign",
                )
            )
            if spec.channel_scoped:
                rules.append(
                    (
                        col.name,
                        filled + f"_decimals = 0 AND regexp_full_match({t}, '\\d+\\.\\d*[1-9]\\d*')",
                        "this channel's currency has no minor unit: use a whole number",
                    )
                )
        elif col.kind == "share":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match({t}, '{_SHARE}')",
                    "not a percentage in [0, 100] with at most 2 decimals",
                )
            )
        elif col.kind == "fraction":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match({t}, '0?\\.\\d{{1,6}}|0')",
                    "not a fraction in [0, 1) with at most 6 decimals (0.15 for 15 %)",
                )
            )
        elif col.kind == "percent":
            rules.append(
                (
                    col.name,
                    filled + f"NOT (regexp_full_match({t}, '\\d{{1,2}}(\\.\\d{{1,4}})?'))",
                    "not a percentage in [0, 100) with at most 4 decimals",
                )
            )
        elif col.kind == "asin":
            rules.append(
                (
                    col.name,
                    filled + f"NOT regexp_full_match({t}, '[0-9A-Z]{{10}}')",
                    "ASIN must be 10 characters A-Z/0-9",
                )
            )
        elif col.kind == "choice":
            allowed = ", ".join(f"'{v}'" for v in col.choices)
            rules.append((col.name, filled + f"{t} NOT IN ({allowed})", f"must be one of {', '.join(col.choices)}"))
        elif col.kind == "timestamp":
            rules.append(
                (
                    col.name,
                    filled + f"(NOT regexp_matches({t}, '{_OFFSET}') OR \"{_TYPED}{col.name}\" IS NULL)",
                    "not an ISO 8601 timestamp with a UTC offset (e.g. 2026-11-29T10:00:00+00:00)",
                )
            )
        elif col.kind == "channel":
            rules.append((col.name, filled + "_decimals IS NULL", "unknown channel (not in the channels config)"))
    rules.extend(check for check in spec.checks if check[0] in present)
    if {"min_price", "max_price"} <= present:
        rules.append(
            (
                "min_price",
                f'"{_TYPED}min_price" > "{_TYPED}max_price"',
                "min_price is greater than max_price",
            )
        )
    return rules


def _typed(text: str, kind: str) -> str:
    """The SQL of `text` (an expression, NULL for a blank cell) as the column's type; NULL where it is not one."""
    sql_type = _SQL_TYPE.get(kind)
    return f"TRY_CAST({text} AS {sql_type})" if sql_type else text


def _literal(text: str) -> str:
    """A constant message as a SQL string literal (rule texts are ours; seller values are never formatted in)."""
    return "'" + text.replace("'", "''") + "'"


def _validate(
    con: duckdb.DuckDBPyConnection,
    spec: InputSpec,
    file: str,
    raw: str,
    channels: dict[str, Channel],
    channel: str | None,
    table: str,
) -> pa.Table:
    """Write the valid typed rows of `raw` as `table` (one CREATE OR REPLACE TABLE ... AS SELECT); the problems."""
    present = {r[0] for r in con.execute(f"DESCRIBE {raw}").fetchall()} - {"_row"}
    # Each value is trimmed once and cast once, in a projection below the rules: DuckDB does not share a repeated
    # trim() between the rules' conditions, and trimming dominated the scan.
    trims = ", ".join(f'trim("{c.name}") AS "{_TRIMMED}{c.name}"' for c in spec.columns if c.name in present)
    typed = {
        c.name: _typed(f"NULLIF(\"{_TRIMMED}{c.name}\", '')", c.kind)
        if c.name in present
        else f"CAST(NULL AS {_SQL_TYPE.get(c.kind, 'VARCHAR')})"
        for c in spec.columns
    }
    casts = ", ".join(f'{expr} AS "{_TYPED}{name}"' for name, expr in typed.items())
    if spec.channel_scoped:
        # The configured channels (a handful) as CASE expressions: no join, so the scan's order is kept.
        known = list(channels.values())
        name = "trim(r.channel)"
        # A blank channel (where the file allows one) means every channel: the fewest decimals of them all.
        blank = any(c.kind == "channel" and c.may_be_empty for c in spec.columns)
        every = f" WHEN '' THEN {min(int(c.decimals) for c in known)}" if blank and known else ""
        decimals = (
            f"CASE {name} "
            + " ".join(f"WHEN {_literal(c.name)} THEN {int(c.decimals)}" for c in known)
            + every
            + " END"
            if known
            else "NULL::BIGINT"
        )
        listed = ", ".join(_literal(c.name) for c in known)
        channel_name = f"CASE WHEN {name} IN ({listed}) THEN {name} END" if known else "NULL::VARCHAR"
        extra = f"{decimals} AS _decimals, {channel_name} AS _channel"
    else:
        extra = "2 AS _decimals, NULL::VARCHAR AS _channel"
    # With `channel`, the rows of other configured channels are left out before anything else: their problems would
    # be theirs alone, and a duplicate key (which includes the channel) never spans two channels.
    scope = (
        f" WHERE _channel IS NULL OR _channel = {_literal(channel)}"
        if channel is not None and spec.channel_scoped
        else ""
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_ALL} AS SELECT r.*, {extra} FROM {raw} r")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_SCOPED} AS SELECT * FROM {_ALL}{scope}")
    trimmed = f"(SELECT s.*, {trims} FROM {_SCOPED} s)" if trims else _SCOPED
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_CHECKED} AS SELECT t.*, {casts} FROM {trimmed} t")
    rules = _rules(spec, present)
    bad = " OR ".join(f"coalesce({condition}, false)" for _, condition, _ in rules) or "false"
    # One pass types every value into the target table and flags the (normally few) bad rows; only those are
    # expanded into problems, and removed afterwards with the duplicates.
    out = ", ".join(f'"{_TYPED}{c.name}" AS "{c.name}"' for c in spec.columns)
    con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT {out}, _row, ({bad}) AS _bad FROM {_CHECKED}')
    flagged = con.execute(f'SELECT count(*) FROM "{table}" WHERE _bad').fetchall()[0][0]
    checks = []
    if flagged:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_FLAGGED} AS SELECT * FROM {_CHECKED} "
            f'WHERE _row IN (SELECT _row FROM "{table}" WHERE _bad)'
        )
        checks = [
            f"SELECT _row AS row, '{column}' AS \"column\", {_shown(column)} AS value, {_literal(message)} AS message, "
            f"_channel FROM {_FLAGGED} WHERE {condition}"
            for column, condition, message in rules
        ]
    if spec.unique:
        key = ", ".join(f'"{k}"' for k in spec.unique)
        checks.append(
            f"SELECT _row AS row, '{spec.unique[-1]}' AS \"column\", concat_ws('/', {key}) AS value, "
            f"'duplicate {'/'.join(spec.unique)} (first seen on row ' || first_row || ')' AS message, _channel "
            f"FROM (SELECT s.*, d.first_row FROM {_SCOPED} s JOIN "
            f"(SELECT {key}, min(_row) AS first_row FROM {_SCOPED} GROUP BY ALL HAVING count(*) > 1) d USING ({key})) "
            "WHERE _row > first_row"
        )
    checks.extend(_unified_checks(spec, present, channels))
    if checks:
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE {_PROBLEMS} AS SELECT DISTINCT ON (row, "column") * FROM ('
            + " UNION ALL ".join(checks)
            + ') ORDER BY row, "column"'
        )
        errors = con.sql(
            f'SELECT {_literal(file)} AS file, row, "column", value, message, _channel AS channel, '
            f"'{ERROR}' AS severity FROM {_PROBLEMS} ORDER BY row"
        ).to_arrow_table()
    else:
        errors = _errors_table([])
    if errors.num_rows:
        con.execute(f'DELETE FROM "{table}" WHERE _bad OR _row IN (SELECT row FROM {_PROBLEMS})')
    con.execute(f'ALTER TABLE "{table}" DROP COLUMN _bad')
    return errors.cast(ERROR_SCHEMA)


_UNIFIED = """
SELECT row, "column", value, message, _channel FROM (
    SELECT s._row AS row, '{column}' AS "column", left(s."{column}", {shown}) AS value,
           'differs from row ' || o._row || ' (channel ' || o._channel || '): ' || {show_s} || ' here, ' || {show_o}
           || ' there' || {reason} AS message,
           s._channel, o._row AS other_row
    FROM (SELECT *, {account} AS _account FROM {scoped} WHERE {publishes}) s
    JOIN (SELECT *, {account} AS _account FROM {all} WHERE {publishes}) o
        ON o._account = s._account AND o.sku = s.sku AND o._channel <> s._channel
    WHERE {valid_s} AND {valid_o} AND {value_s} IS DISTINCT FROM {value_o}
    QUALIFY row_number() OVER (PARTITION BY s._row ORDER BY o._row) = 1
)
"""
_UNIFIED_REASON = (
    " (a blank cell is the channel's setting); channels of one seller in one region publish one quantity per SKU on "
    "Amazon (a unified account: the last quantity sent wins), so their allocation for a SKU must be equal"
)


def _unified_checks(spec: InputSpec, present: set[str], channels: dict[str, Channel]) -> list[str]:
    """For each `spec.unified` column in the file: a row of this validation's scope that publishes a quantity (FBM,
    master_wins, with an ASIN) whose effective value differs from the same SKU's row on another channel of the same
    seller and region (any row of the file, whatever the scope). Each of the two rows gets a problem naming the other,
    so both channels are blocked."""
    columns = [c for c in spec.columns if c.name in spec.unified and c.name in present]
    shared = [
        c
        for c in channels.values()
        if any((o.seller_id, o.region) == (c.seller_id, c.region) and o.name != c.name for o in channels.values())
    ]
    if not columns or not shared:
        return []
    whens = " ".join(f"WHEN {_literal(c.name)} THEN {_literal(f'{c.seller_id}/{c.region}')}" for c in shared)
    strategy = " AND trim(conflict_strategy) IN ('', 'master_wins')" if "conflict_strategy" in present else ""
    checks = []
    for col in columns:
        sql_type = _SQL_TYPE[col.kind]
        pattern = _SHARE if col.kind == "share" else _WHOLE
        # The channels' own settings (validated config values, equal within an account), as SQL literals.
        settings = " ".join(f"WHEN {_literal(c.name)} THEN {_setting(getattr(c.allocation, col.name))}" for c in shared)

        def value(side: str, col: Column = col, sql_type: str = sql_type, settings: str = settings) -> str:
            cell = f'trim({side}."{col.name}")'
            channel_setting = f"CAST(CASE {side}._channel {settings} END AS {sql_type})"
            return f"CASE WHEN {cell} = '' THEN {channel_setting} ELSE TRY_CAST({cell} AS {sql_type}) END"

        def valid(side: str, col: Column = col, pattern: str = pattern) -> str:
            cell = f'trim({side}."{col.name}")'
            return f"({cell} = '' OR regexp_full_match({cell}, '{pattern}'))"

        checks.append(
            _UNIFIED.format(
                column=col.name,
                shown=_SHOWN,
                show_s=f"coalesce(CAST({value('s')} AS VARCHAR), 'not set')",
                show_o=f"coalesce(CAST({value('o')} AS VARCHAR), 'not set')",
                reason=_literal(_UNIFIED_REASON),
                account=f"CASE _channel {whens} END",
                scoped=_SCOPED,
                all=_ALL,
                publishes=f"trim(fulfillment) = 'FBM' AND trim(asin) <> ''{strategy}",
                valid_s=valid("s"),
                valid_o=valid("o"),
                value_s=value("s"),
                value_o=value("o"),
            )
        )
    return checks


def _setting(value: int | Decimal | None) -> str:
    if value is None:
        return "NULL"
    return _literal(f"{value:f}" if isinstance(value, Decimal) else str(int(value)))


_UNKNOWN_SKUS = f"""
SELECT $file AS file, m._row AS row, 'sku' AS "column", left(m.sku, {_SHOWN}) AS value, $message AS message,
       m.channel, $severity AS severity
FROM {{mappings}} m
WHERE NOT EXISTS (SELECT 1 FROM {{master}} inv WHERE inv.sku = m.sku)
ORDER BY m._row
"""


def unknown_skus(con: duckdb.DuckDBPyConnection, mappings: str, master: str, file: str) -> pa.Table:
    """A WARNING (ERROR_SCHEMA rows) for each valid channel_mappings row whose SKU is not in master_inventory: the
    row's own number and channel, column `sku`. Such a SKU is never published (sync_history: `master_missing`), and
    blocks nothing else. `mappings` and `master` are the validated tables (with `_row`)."""
    params = {"file": file, "message": NOT_IN_MASTER, "severity": WARNING}
    rows = con.sql(_UNKNOWN_SKUS.format(mappings=mappings, master=master), params=params).to_arrow_table()
    return rows.cast(ERROR_SCHEMA)
