"""Bad seller input: every problem named with file, row, column and value; valid rows kept."""

import duckdb
import pytest

from seller.inputs import blocking, ensure_input_errors, load_input, unknown_skus, validated_input


def rewrite(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def problems(data, name, channels):
    return load_input(name, data, channels).errors.to_pylist()


def test_small_seller_is_valid(small_seller, channels):
    for name in ("master_inventory", "channel_mappings", "competitor_prices", "fba_inventory"):
        loaded = load_input(name, small_seller, channels)
        assert loaded.errors.num_rows == 0, loaded.errors.to_pylist()
    master = load_input("master_inventory", small_seller, channels).valid
    assert master.num_rows == 7
    assert "SKU ü-7" in master.column("sku").to_pylist()


@pytest.mark.parametrize(
    ("file", "old", "new", "row", "column", "message"),
    [
        ("master_inventory", "FBM-1,7,15.00", "FBM-1,7,abc", 3, "price", "not a price"),
        ("master_inventory", "FBM-1,7,15.00", "FBM-1,7,15.005", 3, "price", "at most 2 decimals"),
        ("master_inventory", "FBM-1,7,", "FBM-1,-7,", 3, "quantity", "negative quantity"),
        ("master_inventory", "FBM-CEIL,0,", "FBM-1,0,", 5, "sku", "duplicate sku (first seen on row 3)"),
        ("master_inventory", "FBM-1,7,", '"FBM\t1",7,', 3, "sku", "tab, line break"),
        ("master_inventory", "FBM-1,7,", '"FBM\n1",7,', 3, "sku", "tab, line break"),
        ("master_inventory", "FBM-1,7,", '"FBM\x071",7,', 3, "sku", "control character"),
        ("channel_mappings", "uk,FBA-1,", "uk,=1+1,", 8, "sku", "spreadsheet formula"),
        ("channel_mappings", "uk,FBA-1,", "uk,+FBA-1,", 8, "sku", "spreadsheet formula"),
        ("master_inventory", "FBM-1,7,", "@SUM(A1),7,", 3, "sku", "spreadsheet formula"),
        ("channel_mappings", "B000000002", "B0002", 3, "asin", "ASIN must be 10 characters"),
        (
            "channel_mappings",
            "B000000002,FBM,,10.00,25.00",
            "B000000002,FBM,,26.00,25.00",
            3,
            "min_price",
            "min_price is greater than max_price",
        ),
        ("channel_mappings", "uk,FBA-1", "mx,FBA-1", 8, "channel", "unknown channel"),
        ("channel_mappings", "B000000002,FBM,", "B000000002,FBX,", 3, "fulfillment", "must be one of FBA, FBM"),
        ("competitor_prices", "2026-11-29T09:00:00Z", "2026-11-29 09:00:00", 6, "observed_at", "UTC offset"),
        ("fba_inventory", "us,FBA-1,42", "us,FBA-1,4x2", 2, "fulfillable_quantity", "not a whole number"),
    ],
)
def test_bad_value_is_reported_with_file_row_column(small_seller, channels, file, old, new, row, column, message):
    rewrite(small_seller / f"{file}.csv", old, new)
    found = problems(small_seller, file, channels)
    match = [p for p in found if p["row"] == row and p["column"] == column]
    assert match, found
    assert message in match[0]["message"]
    assert match[0]["file"] == f"{file}.csv"


def test_a_leading_minus_in_a_sku_is_allowed(small_seller, channels):
    # A leading '-' is an ordinary SKU character; only =, + and @ are taken for a spreadsheet formula.
    rewrite(small_seller / "master_inventory.csv", "FBM-1,7,", "-FBM-1,7,")
    assert problems(small_seller, "master_inventory", channels) == []


def test_missing_column_is_a_file_level_problem(small_seller, channels):
    rewrite(small_seller / "master_inventory.csv", "sku,quantity,price,", "sku,quantity,prize,")
    loaded = load_input("master_inventory", small_seller, channels)
    assert [(p["row"], p["column"], p["message"]) for p in loaded.errors.to_pylist()] == [
        (1, "price", "missing required column 'price'")
    ]
    assert loaded.valid.num_rows == 0


def test_valid_rows_survive_next_to_bad_ones(small_seller, channels):
    rewrite(small_seller / "master_inventory.csv", "FBM-1,7,15.00", "FBM-1,7,abc")
    loaded = load_input("master_inventory", small_seller, channels)
    assert loaded.valid.num_rows == 6
    assert "FBM-1" not in loaded.valid.column("sku").to_pylist()


def test_problems_block_only_their_own_channel(small_seller, channels):
    rewrite(small_seller / "channel_mappings.csv", "us,FBM-1,B000000002", "us,FBM-1,B0002")
    loaded = load_input("channel_mappings", small_seller, channels)
    assert loaded.errors_for("us").num_rows == 1
    assert loaded.errors_for("uk").num_rows == 0


def test_unknown_channel_blocks_every_channel(small_seller, channels):
    rewrite(small_seller / "channel_mappings.csv", "uk,FBA-1", "mx,FBA-1")
    loaded = load_input("channel_mappings", small_seller, channels)
    assert loaded.errors_for("us").num_rows == 1
    assert loaded.errors_for("uk").num_rows == 1


def test_row_with_too_many_fields_is_named(small_seller, channels):
    rewrite(small_seller / "fba_inventory.csv", "uk,FBA-1,5", "uk,FBA-1,5,9")
    found = problems(small_seller, "fba_inventory", channels)
    assert [(p["row"], p["message"]) for p in found] == [(3, "expected 3 fields, found 4")]


def test_non_utf8_file_names_the_line(small_seller, channels):
    path = small_seller / "master_inventory.csv"
    path.write_bytes(path.read_bytes().replace("Ünicode".encode(), "\xdcnicode".encode("latin-1")))
    found = problems(small_seller, "master_inventory", channels)
    assert [(p["row"], p["message"]) for p in found] == [(8, "not UTF-8 text (save the file as UTF-8)")]


def test_a_non_utf8_byte_names_row_and_column_and_blocks_only_its_channel(small_seller, channels):
    path = small_seller / "channel_mappings.csv"
    path.write_bytes(path.read_bytes() + b"uk,FBM-1,B000000002,FBM,,10.00,25.00,,caf\xe9\nxx,A\xe9,B000000002\n")
    loaded = load_input("channel_mappings", small_seller, channels)
    found = sorted((p["row"], p["column"], p["channel"]) for p in loaded.errors.to_pylist())
    # The second bad record also has too few fields: it is named once, for every channel (no readable channel).
    assert found[0] == (9, "undercut_percent", "uk") and [r for r, _, _ in found] == [9, 10], found
    assert loaded.errors_for("us").to_pylist() == [p for p in loaded.errors.to_pylist() if p["channel"] is None]
    assert loaded.valid.num_rows == 7


def test_missing_required_file_and_optional_file(small_seller, channels):
    (small_seller / "master_inventory.csv").unlink()
    (small_seller / "fba_inventory.csv").unlink()
    assert "file missing" in problems(small_seller, "master_inventory", channels)[0]["message"]
    assert problems(small_seller, "fba_inventory", channels) == []


def test_parquet_input_reads_like_csv(small_seller, channels):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(small_seller / "fba_inventory.csv"), small_seller / "fba_inventory.parquet")
    (small_seller / "fba_inventory.csv").unlink()
    loaded = load_input("fba_inventory", small_seller, channels)
    assert loaded.errors.num_rows == 0
    assert loaded.valid.column("fulfillable_quantity").to_pylist() == [42, 5]


# -- the DuckDB CSV reader (the fast path) against the exact pyarrow one -------------------------------------------


def _fast_rows(path):
    """The rows DuckDB's reader stages for `path` (with `_row`), or None when it hands the file to pyarrow."""
    import duckdb

    from seller.inputs import _stage_csv

    con = duckdb.connect()
    con.execute("SET threads = 4")
    try:
        if not _stage_csv(con, path):
            return None
        return con.sql("SELECT * FROM _input_raw").to_arrow_table().to_pylist()
    finally:
        con.close()


def _pyarrow_rows(path):
    from seller.inputs import _read_csv

    problems = []
    table = _read_csv(path, problems)
    return (table.to_pylist() if table is not None else None), problems


def test_duckdb_reader_keeps_record_numbers_in_file_order(tmp_path):
    """`_row` is the record number even when the rows are not in any sort order, values span lines and the file is
    big enough to be parsed by several threads in several pieces."""
    import random

    rng = random.Random(3)
    order = list(range(800_000))
    rng.shuffle(order)
    lines = ["channel,sku,fulfillable_quantity,record"]
    for record, key in enumerate(order, start=2):
        sku = f'"SKU-{key}\nline two,""quoted"""' if record % 997 == 0 else f"SKU-{key}"
        lines.append(f"us,{sku},{key % 50},{record}")
    path = tmp_path / "fba_inventory.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 16_000_000  # several 8 MB pieces
    rows = _fast_rows(path)
    assert rows is not None
    assert len(rows) == len(order)
    assert all(r["_row"] == int(r["record"]) for r in rows)
    assert rows[995]["sku"] == f'SKU-{order[995]}\nline two,"quoted"'


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbfchannel,sku,n\nus,A,1\n",
        b'channel,sku,n\r\nus,A,1\r\nus,"B\r\nC",2\r\n',
        b"channel,sku,n\nus,A,1\n\nus,B,2\n\n",
        b"channel,sku,n\nus,A,1\nus,B,2",
        b'channel,sku,n\nus,"A ""x""",1\nus,a"b,2\n',
        b'channel,sku,n\nus,,""\n,"",\n',
        b'channel,sku,n\nus,"A\x07",1\nus,A\tB,2\n',
        b"channel,sku,n\n",
        b" channel , sku ,n\nus,A,1\n",
        b'channel,sku,n\nus, "A",1\n',  # DuckDB would strip the space: pyarrow reads it
        b'channel,sku,n\nus,"A" ,1\n',
        b"channel,sku,n\nus,A,1,9\nus,B,2\n",  # malformed rows: pyarrow names them
        b"channel,sku,n\nus,A\nus,B,2\n",
        b'channel,sku,n\nus,"A,1\n',
        b"channel,sku,n\nus,\xdc,1\n",  # not UTF-8
        b'"channel",sku,n\nus,A,1\n',
        b"channel,sku,sku\nus,A,1\n",
        b"",
    ],
)
def test_duckdb_reader_reads_exactly_what_pyarrow_reads(tmp_path, content):
    path = tmp_path / "fba_inventory.csv"
    path.write_bytes(content)
    fast = _fast_rows(path)
    exact, problems = _pyarrow_rows(path)
    if fast is not None:
        assert not problems
        assert fast == exact


def test_channel_scoped_validation_reports_what_whole_file_validation_reports(small_seller, channels):
    import duckdb

    from seller.inputs import validated_input

    rewrite(small_seller / "channel_mappings.csv", "us,FBM-1,B000000002", "us,FBM-1,B0002")
    rewrite(small_seller / "channel_mappings.csv", "uk,FBA-1", "mx,FBA-1")
    with (small_seller / "channel_mappings.csv").open("a", encoding="utf-8") as f:
        f.write("uk,BAD SKU ,B000000009,FBA,,1.00,2.00,,\n")
    whole = load_input("channel_mappings", small_seller, channels)
    for channel in channels:
        con = duckdb.connect()
        with validated_input(con, "channel_mappings", small_seller, channels, channel=channel) as scoped:
            table = con.sql("SELECT * FROM channel_mappings").to_arrow_table()
        assert scoped.errors_for(channel).to_pylist() == whole.errors_for(channel).to_pylist()
        assert table.to_pylist() == [r for r in whole.valid.to_pylist() if r["channel"] == channel]
        assert scoped.rows == table.num_rows
        con.close()


def test_a_line_longer_than_a_parse_block_is_named_with_its_row_and_column(small_seller, channels):
    # pyarrow reads in 1 MB blocks; a 2 MB value used to surface as "straddling object" at row 0.
    path = small_seller / "channel_mappings.csv"
    path.write_bytes(path.read_bytes() + b"uk,FBM-1," + b"B" * 2_000_000 + b",FBM,,10.00,25.00,,\n")
    found = problems(small_seller, "channel_mappings", channels)
    assert [(p["row"], p["column"], p["channel"], len(p["value"])) for p in found] == [(9, "asin", "uk", 200)]


def test_every_existing_problem_is_a_blocking_error(small_seller, channels):
    rewrite(small_seller / "channel_mappings.csv", "us,FBM-1,B000000002", "us,FBM-1,B0002")
    rewrite(small_seller / "master_inventory.csv", "sku,quantity,price,", "sku,quantity,prize,")
    for name in ("channel_mappings", "master_inventory"):
        loaded = load_input(name, small_seller, channels)
        assert loaded.errors.num_rows == 1 and loaded.errors.column("severity").to_pylist() == ["error"]
        assert blocking(loaded.errors).num_rows == 1


def test_a_mapping_sku_missing_from_the_master_is_a_warning_on_its_own_row(small_seller, channels):
    path = small_seller / "channel_mappings.csv"
    path.write_text(path.read_text() + "uk,GHOST-1,B000000009,FBM,,5.00,10.00,,\n")  # row 9
    con = duckdb.connect()
    with validated_input(con, "master_inventory", small_seller, channels):
        pass
    with validated_input(con, "channel_mappings", small_seller, channels, channel="uk") as loaded:
        assert loaded.errors_for("uk").num_rows == 0  # a valid row: it stays in the table
        warned = unknown_skus(con, "channel_mappings", "master_inventory", loaded.path.name)
    assert warned.to_pylist() == [
        {
            "file": "channel_mappings.csv",
            "row": 9,
            "column": "sku",
            "value": "GHOST-1",
            "message": "not in master_inventory",
            "channel": "uk",
            "severity": "warning",
        }
    ]
    assert blocking(warned).num_rows == 0


def test_an_input_errors_table_from_before_severities_gets_the_column(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute(
        'CREATE TABLE input_errors (input VARCHAR, file VARCHAR, row BIGINT, "column" VARCHAR, value VARCHAR, '
        "message VARCHAR, channel VARCHAR)"
    )
    con.execute("INSERT INTO input_errors VALUES ('fba_inventory', 'fba_inventory.csv', 3, 'sku', 'x', 'bad', 'us')")
    ensure_input_errors(con)
    ensure_input_errors(con)  # idempotent
    assert con.execute("SELECT input, severity FROM input_errors").fetchall() == [("fba_inventory", "error")]
