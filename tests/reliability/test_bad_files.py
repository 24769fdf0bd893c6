"""Bad seller files (the hidden-bytes corpus): each problem gets an error naming file, row and column (input_errors),
nothing is published for the channel it blocks, and the channels it does not block still run and converge.

Row numbers count the header as row 1; tests/data/small/channel_mappings.csv has 7 data rows, so an appended row is
row 9. A problem on a row of one channel (uk here) blocks only that channel; a file-level problem (header, empty
file, encoding) blocks every channel, as README documents."""

from __future__ import annotations

import pytest

from tests.sync.helpers import query

GOOD = "uk,FBM-1,B000000002,FBM,,10.00,25.00,,\n"


def mappings(scenario) -> bytes:
    return (scenario.data / "channel_mappings.csv").read_bytes()


def write(scenario, name: str, blob: bytes) -> None:
    (scenario.data / f"{name}.csv").write_bytes(blob)


def errors(scenario, channel: str) -> list[tuple]:
    return query(scenario.data, channel, 'SELECT file, row, "column", value, message FROM input_errors ORDER BY row')


def assert_error(found: list[tuple], file: str, row: int, column: str, what: str = "") -> None:
    named = [(f.rsplit("/", 1)[-1], r, c) for f, r, c, _, _ in found]
    assert (file, row, column) in named, f"no error naming {file}, row {row}, column {column!r} ({what}): {found}"


def blocked_and_other_runs(scenario, expected: list[tuple[int, str]]) -> None:
    """uk is blocked with `expected` (row, column) errors and publishes nothing; us runs and converges."""
    blocked = scenario.run("uk")
    assert not blocked.success, "a blocking input check must stop the uk run"
    found = errors(scenario, "uk")
    for row, column in expected:
        assert_error(found, "channel_mappings.csv", row, column)
    assert len({r for _, r, _, _, _ in found}) == len(expected), f"only the bad rows are flagged: {found}"
    scenario.check_nothing_published("uk")
    other = scenario.run("us")
    assert other.success, "us has no bad row: it must still run"
    assert errors(scenario, "us") == []
    scenario.check_all(other.run_id, "us")


ROW_CASES = {
    "tab_in_sku": (b'uk,"FBM\t1",B000000002,FBM,,10.00,25.00,,\n', "sku"),
    "newline_in_sku": (b'uk,"FBM\n1",B000000002,FBM,,10.00,25.00,,\n', "sku"),
    "formula_in_price": (b"uk,FBM-1,B000000002,FBM,,=1+1,25.00,,\n", "min_price"),
}


def test_row_problems_block_only_their_channel(scenario):
    scenario.start()
    blob = mappings(scenario) + b"".join(line for line, _ in ROW_CASES.values())
    write(scenario, "channel_mappings", blob)
    scenario.note_fault("tab, newline, =1+1 on uk rows")
    # the newline row spans two physical lines but is one CSV record: rows 9, 10, 11
    blocked_and_other_runs(scenario, [(9 + i, column) for i, (_, column) in enumerate(ROW_CASES.values())])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ROW_CASES))
def test_row_problem_alone(scenario, case):
    scenario.start()
    line, column = ROW_CASES[case]
    write(scenario, "channel_mappings", mappings(scenario) + line)
    scenario.note_fault(case)
    blocked_and_other_runs(scenario, [(9, column)])


def test_bom_crlf_and_unicode_skus_are_accepted(scenario):
    scenario.start()
    blob = b"\xef\xbb\xbf" + mappings(scenario).replace(b"\n", b"\r\n")
    write(scenario, "channel_mappings", blob)
    scenario.note_fault("BOM + CRLF; unicode SKU 'SKU ü-7'")
    result = scenario.run("us")
    assert result.success
    assert errors(scenario, "us") == []
    statuses = scenario.check_all(result.run_id, "us")
    assert statuses["SKU ü-7"] == "accepted"


def file_level(scenario, blob: bytes, file: str, row: int, column: str) -> None:
    scenario.start()
    write(scenario, file.removesuffix(".csv"), blob)
    for channel in ("us", "uk"):
        result = scenario.run(channel)
        assert not result.success
        assert_error(errors(scenario, channel), file, row, column)
        scenario.check_nothing_published(channel)
    scenario.check_secrets()


def test_duplicate_header_blocks_every_channel(scenario):
    scenario.not_applicable(3, "the channel is blocked before anything is sent")
    scenario.not_applicable(5, "the channel is blocked by design: nothing is published to converge")
    scenario.note_fault("duplicate header min_price")
    blob = (scenario.data / "channel_mappings.csv").read_bytes().replace(b"max_price,", b"min_price,", 1)
    file_level(scenario, blob, "channel_mappings.csv", 1, "min_price")


def test_empty_file_blocks_every_channel(scenario):
    scenario.not_applicable(3, "the channel is blocked before anything is sent")
    scenario.not_applicable(5, "the channel is blocked by design: nothing is published to converge")
    scenario.note_fault("empty channel_mappings.csv")
    scenario.start()
    write(scenario, "channel_mappings", b"")
    for channel in ("us", "uk"):
        result = scenario.run(channel)
        assert not result.success
        found = errors(scenario, channel)
        assert [(f.rsplit("/", 1)[-1], m) for f, _, _, _, m in found] == [
            ("channel_mappings.csv", "file is empty: expected a header row")
        ]
        scenario.check_nothing_published(channel)
    scenario.check_secrets()


def test_latin1_byte_names_row_and_column(scenario):
    scenario.start()
    write(scenario, "channel_mappings", mappings(scenario) + b"uk,FBM-1,B000000002,FBM,,10.00,25.00,,caf\xe9\n")
    scenario.note_fault("Latin-1 byte in uk row")
    blocked_and_other_runs(scenario, [(9, "undercut_percent")])


@pytest.mark.slow
def test_ten_megabyte_line_names_row_and_column(scenario):
    scenario.start()
    line = b"uk,FBM-1," + b"B" * 10_000_000 + b",FBM,,10.00,25.00,,\n"
    write(scenario, "channel_mappings", mappings(scenario) + line)
    scenario.note_fault("10 MB single line (uk row)")
    blocked_and_other_runs(scenario, [(9, "asin")])


def test_formula_as_sku_is_flagged(scenario):
    scenario.start()
    write(scenario, "channel_mappings", mappings(scenario) + b"uk,=1+1,B000000002,FBM,,10.00,25.00,,\n")
    scenario.note_fault("=1+1 as a uk SKU")
    blocked_and_other_runs(scenario, [(9, "sku")])


@pytest.mark.slow
def test_million_row_file_with_one_bad_row_at_the_end(scenario):
    scenario.start()
    head = (scenario.data / "competitor_prices.csv").read_text(encoding="utf-8").splitlines()[0]
    rows = [head]
    for i in range(1_000_000):
        rows.append(f"us,B0000000{(i % 5) + 1:02d},A{i:013d},{20 + (i % 7)}.00,0.00,FBM,2026-11-28T00:00:00+00:00")
    rows.append("uk,B000000001,A9BADROW00001,abc,0.00,FBA,2026-11-28T00:00:00+00:00")
    (scenario.data / "competitor_prices.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    scenario.note_fault("1,000,000-row competitor_prices, bad price on the last (uk) row")
    blocked = scenario.run("uk")
    assert not blocked.success
    found = query(scenario.data, "uk", 'SELECT file, row, "column" FROM input_errors')
    assert [(f.rsplit("/", 1)[-1], r, c) for f, r, c in found] == [("competitor_prices.csv", 1_000_002, "price")]
    scenario.check_nothing_published("uk")
    other = scenario.run("us")
    assert other.success
    scenario.check_all(other.run_id, "us")
