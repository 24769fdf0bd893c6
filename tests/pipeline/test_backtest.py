"""price_backtest as Dagster runs it, on a small market worked out by hand (3 ASINs, one day), and its rules file check.

The market (channel us, seller A3DEMOSELLER01, undercut 0.5 %, freshness 24 h; no product_fees: fees 0; our feedback
unknown: no bonus). Competitors from 11-30 03:00 (A1, A3) and 12:00 (A2), every one seen again at 12-01 02:30 at its
price then, so from 02:00 to the end of the day the market stands still. Before a SKU's competitors appear it keeps its
base price (its own offer is then the ASIN's lowest: that enters the suppression's reference).

S1 (A1, FBA, cost 10.00): C1 FBM 18.00 rating 98; C2 FBA 18.50 rating 90, 17.50 from 12-01 01:10.
  live: 17.91 at 00 and 01 (18.00 x 0.995 rounded down), 17.41 from 02 (17.50 x 0.995). Score ours (FBA):
  1791 x 9700 = 17,372,700 < C1 1800 x 9900 = 17,820,000 < C2 1850 x 9700; from 02 ours 1741 x 9700 < C2
  1750 x 9700: ours all 24 hours. Profit 2 x 7.91 + 22 x 7.41 = 178.84.
  candidate R1 set_price 19.00: 1900 x 9700 = 18,430,000 loses to C1 (00, 01), then C2: 0 hours.
S2 (A2, FBM, shipping 2.00, cost 12.00): C4 FBM 26.00 + 3.00 rating 60 (a competitor for pricing, not eligible for
  the Buy Box), C5 FBA 30.00 no rating.
  live: 29.00 x 0.995 = 28.855 -> 28.85 landed, price 26.85; 2885 x 10000 < C5 3000 x 9700 = 29,100,000: ours every
  hour, profit 24 x 14.85 = 356.40.
  candidate R2 markup_percent 150: 12.00 x 2.5 = 30.00, landed 32.00: C5 wins, 0 hours.
S3 (A3, FBM, no shipping, cost 5.00): C3 FBM 10.00 rating 96, 20.00 from 12-01 00:30.
  live: 9.95 at 00, where C3 wins (1000 x 9900 = 9,900,000 < ours 995 x 10000). From 01 ours is 19.90; the reference
  is the median of the previous 24 hourly lows (12.00 until 11-30 03:00, 9.95 after, 19.90 from 12-01 01): at 01-12
  still 9.95, so 5 x 1990 > 3 x 1990 suppresses; at 13 the middle pair is 9.95/19.90 (2 x median 2985, 9950 > 8955:
  suppressed); from 14 it is 19.90 (9950 <= 11940): C3 wins (2000 x 9900 < 1990 x 10000). 0 hours, 13 suppressed.
  candidate R3 ceiling 11.00: 9.95 at 00 (C3 wins), 11.00 from 01: 5 x 1100 <= 3 x 1990, never suppressed, and 1100 x
  10000 < C3's 19,800,000: ours 23 hours, profit 23 x 6.00 = 138.00.
Overall: 72 ASIN-hours; live holds 48 (share 2/3), profit 535.24; candidate 23, profit 138.00; 3 SKUs differ.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from assets.backtest import price_backtest
from resources.warehouse import Warehouse
from sync import offers

SELLER = "A3DEMOSELLER01"
DAY = "2026-12-01"
PARTITION = dg.MultiPartitionKey({"channel": "us", "date": DAY})
RULES = (
    "rule_id,channel,scope,scope_value,type,value,priority,active\n"
    "R1,us,sku,S1,set_price,19.00,10,true\n"
    "R2,,sku,S2,markup_percent,150,10,true\n"
    "R3,us,sku,S3,ceiling,11.00,10,\n"
)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def offer(asin: str, seller: str, price: str, at: str, fulfillment: str = "FBM", shipping: str = "0", rating=None):
    return {
        "asin": asin,
        "seller_id": seller,
        "observed_at": t(at),
        "price": price,
        "shipping": shipping,
        "fulfillment": fulfillment,
        "feedback_rating": rating,
    }


FIRST = [
    offer("B0000000A1", "ACOMPETITOR01", "18.00", "2026-11-30T03:00", rating="98"),
    offer("B0000000A1", "ACOMPETITOR02", "18.50", "2026-11-30T03:00", "FBA", rating="90"),
    offer("B0000000A2", "ACOMPETITOR04", "26.00", "2026-11-30T12:00", shipping="3.00", rating="60"),
    offer("B0000000A2", "ACOMPETITOR05", "30.00", "2026-11-30T12:00", "FBA"),
    offer("B0000000A3", "ACOMPETITOR03", "10.00", "2026-11-30T03:00", rating="96"),
]
MOVES = [
    offer("B0000000A3", "ACOMPETITOR03", "20.00", "2026-12-01T00:30", rating="96"),
    offer("B0000000A1", "ACOMPETITOR02", "17.50", "2026-12-01T01:10", "FBA", rating="90"),
]
# seen again at 02:30 as they stand then (fresh for the rest of the day)
AGAIN = [{**o, "observed_at": t("2026-12-01T02:30")} for o in [FIRST[0], MOVES[1], FIRST[2], FIRST[3], MOVES[0]]]
OBSERVATIONS = FIRST + MOVES + AGAIN


@pytest.fixture
def market(tmp_path) -> Path:
    """The channel's store holding what price_backtest reads: the SKUs and the offers observed."""
    data = tmp_path / "data"
    (data / "warehouse").mkdir(parents=True)
    con = duckdb.connect(str(data / "warehouse" / "us.duckdb"))
    con.execute(
        "CREATE TABLE reconciled_inventory AS SELECT * FROM (VALUES ('S1', 'B0000000A1', 'FBA'), "
        "('S2', 'B0000000A2', 'FBM'), ('S3', 'B0000000A3', 'FBM')) v(sku, asin, fulfillment)"
    )
    con.execute(
        "CREATE TABLE master_inventory AS SELECT sku, price::DECIMAL(18,2) AS price, cost::DECIMAL(18,2) AS cost, "
        "NULL::VARCHAR AS brand, 'PRODUCT' AS product_type FROM (VALUES ('S1', '20.00', '10.00'), "
        "('S2', '25.00', '12.00'), ('S3', '12.00', '5.00')) v(sku, price, cost)"
    )
    con.execute(
        "CREATE TABLE channel_mappings AS SELECT sku, min_price::DECIMAL(18,2) AS min_price, "
        "max_price::DECIMAL(18,2) AS max_price, shipping::DECIMAL(18,2) AS shipping, "
        "NULL::DECIMAL(9,4) AS undercut_percent FROM (VALUES ('S1', '15.00', '30.00', '0'), "
        "('S2', '20.00', '40.00', '2.00'), ('S3', '8.00', '20.00', '0')) v(sku, min_price, max_price, shipping)"
    )
    offers.ensure_tables(con)
    rows = pa.Table.from_pylist(
        [
            {**o, "feedback_count": None, "is_featured_merchant": None, "is_buybox_winner": None, "is_prime": None}
            for o in OBSERVATIONS
        ],
        schema=offers.OBSERVATION_SCHEMA,
    )
    offers.append(con, "pull", rows, offers.SNAPSHOT_SCHEMA.empty_table(), t("2026-12-01T03:00"), 30)
    con.close()
    return data


def run_backtest(data: Path, rules_path: Path | str, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [price_backtest],
        partition_key=PARTITION,
        resources={"warehouse": Warehouse(data_dir=str(data))},
        run_config={"ops": {"price_backtest": {"config": {"rules_path": str(rules_path)}}}},
        **kwargs,
    )


def query(data: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(data / "warehouse" / "us.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


SKUS = (
    "SELECT sku, hours, live_last_price, live_buybox_hours, live_units, live_profit, price_diff_hours, "
    "candidate_last_price, candidate_buybox_hours, candidate_units, candidate_profit "
    "FROM price_backtest WHERE day = '2026-12-01' ORDER BY sku"
)
HOURS = (
    "SELECT strftime(hour AT TIME ZONE 'UTC', '%H'), asins, live_held, live_suppressed, live_profit, candidate_held, "
    "candidate_suppressed, candidate_profit FROM price_backtest_hours ORDER BY hour"
)
d = Decimal


@pytest.fixture
def backtested(market, tmp_path) -> tuple[Path, dict]:
    rules = tmp_path / "candidate.csv"
    rules.write_text(RULES)
    result = run_backtest(market, rules)
    assert result.success
    return market, result.asset_materializations_for_node("price_backtest")[0].metadata


def test_the_hand_worked_market_gives_exactly_the_live_figures_worked_out_by_hand(backtested):
    market, meta = backtested
    assert [row[:6] for row in query(market, SKUS)] == [
        ("S1", 24, d("17.41"), 24, 24, d("178.84")),
        ("S2", 24, d("26.85"), 24, 24, d("356.40")),
        ("S3", 24, d("19.90"), 0, 0, d("0.00")),
    ]
    hours = [row[:5] for row in query(market, HOURS)]
    assert hours[:3] == [("00", 3, 2, 0, d("22.76")), ("01", 3, 2, 1, d("22.76")), ("02", 3, 2, 1, d("22.26"))]
    assert [h[3] for h in hours] == [0] + [1] * 13 + [0] * 10  # S3's offer suppressed 01-13
    assert all(h[1:3] == (3, 2) and h[4] == d("22.26") for h in hours[3:])
    assert meta["live_share"].value == pytest.approx(48 / 72)
    assert (meta["live_profit"].value, meta["live_units"].value) == ("535.24", 48)
    assert meta["fees"].value.startswith("none") and meta["live_rules"].value == "implicit default"
    chart = Path(meta["chart"].value)
    assert chart.name == "price_backtest-2026-12-01.svg" and chart.read_text().startswith("<svg")
    assert len(meta["per_hour"].value.records) == 24


def test_the_hand_worked_market_gives_exactly_the_candidate_figures_worked_out_by_hand(backtested):
    market, meta = backtested
    assert [row[:1] + row[6:] for row in query(market, SKUS)] == [
        ("S1", 24, d("19.00"), 0, 0, d("0.00")),
        ("S2", 24, d("30.00"), 0, 0, d("0.00")),
        ("S3", 23, d("11.00"), 23, 23, d("138.00")),
    ]
    hours = [row[:2] + row[5:] for row in query(market, HOURS)]
    assert hours[:3] == [("00", 3, 0, 0, d("0.00")), ("01", 3, 1, 0, d("6.00")), ("02", 3, 1, 0, d("6.00"))]
    assert all(h[1:] == (3, 1, 0, d("6.00")) for h in hours[3:])
    assert meta["skus_price_differs"].value == 3
    assert meta["candidate_share"].value == pytest.approx(23 / 72)
    assert (meta["candidate_profit"].value, meta["candidate_units"].value) == ("138.00", 23)


def failure(result: dg.ExecuteInProcessResult) -> str:
    (event,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return event.step_failure_data.error.message


def test_a_bad_rules_file_fails_the_run_naming_file_row_and_column_before_anything_is_replayed(market, tmp_path):
    bad = tmp_path / "candidate.csv"
    bad.write_text(
        "rule_id,channel,scope,scope_value,type,value,priority,active\n"
        "R1,us,sku,S1,set_price,19.00,10,true\n"
        "R2,us,sku,S2,markup_percnt,150,10,true\n"  # row 3: unknown type
        "R3,us,sku,S3,ceiling,eleven,10,true\n"  # row 4: not a decimal
        "R4,mars,all,,floor,1.00,1,true\n"  # row 5: a channel not configured
    )
    result = run_backtest(market, bad, raise_on_error=False)
    assert not result.success
    message = failure(result)
    assert f"{bad}, row 3, column type: must be one of" in message
    assert f"{bad}, row 4, column value: not a non-negative number" in message
    assert f"{bad}, row 5, column channel: unknown channel" in message
    assert "price_backtest" not in {r[0] for r in query(market, "SHOW TABLES")}  # nothing half-written

    result = run_backtest(market, tmp_path / "missing.csv", raise_on_error=False)
    assert not result.success and f"{tmp_path / 'missing.csv'}, row 0: no such file" in failure(result)
    result = run_backtest(market, tmp_path / "rules.xlsx", raise_on_error=False)
    assert not result.success and "expected a .csv or .parquet file" in failure(result)


def test_a_backfill_run_takes_the_rules_file_from_its_tag_and_parquet_works(market, tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    source = tmp_path / "candidate.csv"
    source.write_text(RULES)
    rules = tmp_path / "candidate.parquet"
    pq.write_table(pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(strings_can_be_null=False)), rules)
    result = dg.materialize(
        [price_backtest],
        partition_key=PARTITION,
        resources={"warehouse": Warehouse(data_dir=str(market))},
        tags={"backtest/rules_path": str(rules)},
    )
    assert result.success
    assert query(market, "SELECT DISTINCT rules_path FROM price_backtest") == [(str(rules),)]
    without = dg.materialize(
        [price_backtest],
        partition_key=PARTITION,
        resources={"warehouse": Warehouse(data_dir=str(market))},
        raise_on_error=False,
    )
    assert "no candidate rules file" in failure(without)


def test_backtests_run_outside_the_channel_sync_jobs():
    from pipelines.definitions import defs

    for job in ("channel_pipeline_job", "inventory_job", "prices_job"):
        selected = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        assert dg.AssetKey("price_backtest") not in selected, job
    job = defs.resolve_job_def("price_backtest_job")
    assert job.asset_layer.selected_asset_keys == {dg.AssetKey("price_backtest")}
    assert job.partitions_def.get_partition_key_from_str("us|2026-12-01") is not None


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning", "ignore::dagster.PreviewWarning")
def test_the_demo_day_is_backtested_from_the_cli(small_seller, tmp_path, monkeypatch):
    """The demo's path on the small seller: the pipeline (offline), a seeded simulated day of observations, then the
    exact command the demo prints, run as a subprocess."""
    import json
    import os
    import subprocess
    import sys

    from pipelines import backtest_demo
    from tests.pipeline.test_dagster import materialize

    assert materialize(small_seller, "us").success
    monkeypatch.setenv("SALES_CHANNEL_DATA", str(small_seller))
    assert backtest_demo.main(["--data", str(small_seller), "--channel", "us"]) == 0
    observed = query(
        small_seller,
        "SELECT count(*), count(DISTINCT date_trunc('hour', observed_at)) FROM "
        "offer_observations WHERE source = 'pull'",
    )
    assert observed[0][1] == backtest_demo.HOURS and observed[0][0] > backtest_demo.HOURS
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    rules = small_seller / "backtest" / "candidate_rules.csv"
    config = {"ops": {"price_backtest": {"config": {"rules_path": str(rules)}}}}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "pipelines.definitions",
        "--select",
        "price_backtest",
        "--partition",
        f"us|{day}",
        "--config-json",
        json.dumps(config),
    ]
    env = {**os.environ, "SALES_CHANNEL_DATA": str(small_seller), "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = query(small_seller, f"SELECT count(*), sum(live_buybox_hours) FROM price_backtest WHERE day = '{day}'")
    listed = query(small_seller, "SELECT count(*) FROM reconciled_inventory WHERE asin IS NOT NULL")
    assert rows[0][0] == listed[0][0] and rows[0][1] > 0
    assert (small_seller / "feeds" / "us" / "backtests" / f"price_backtest-{day}.svg").exists()
