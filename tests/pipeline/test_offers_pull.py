"""The budgeted offers pull against the emulator over HTTP: the oldest ASINs first (never observed before all),
never one observed more recently than one it leaves out, and each run going on where the last one stopped."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.inputs import input_assets
from assets.offers import offer_observations
from reliability.wiretap import Wiretap
from resources.warehouse import Warehouse
from seller.config import load_channels
from tests.sync.helpers import REPO, spapi_for

ASINS = [f"B{n:09d}" for n in range(100, 145)]  # 45 mapped ASINs: three requests of 20, 20 and 5
INPUTS = [a for a in input_assets if a.key.path[-1] in ("master_inventory", "channel_mappings", "competitor_prices")]
INPUTS.append(offer_observations)


@pytest.fixture
def seller(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    master = ["sku,quantity,price"] + [f"SKU-{a},5,20.00" for a in ASINS]
    mappings = ["channel,sku,asin,fulfillment,min_price,max_price"] + [f"us,SKU-{a},{a},FBM,10.00,30.00" for a in ASINS]
    offers = ["channel,asin,seller_id,price,shipping,fulfillment,observed_at"] + [
        f"us,{a},A1RIVAL00001,19.00,0.00,FBA,2026-12-01T00:00:00+00:00" for a in ASINS
    ]
    for name, lines in (("master_inventory", master), ("channel_mappings", mappings), ("competitor_prices", offers)):
        (data / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def asked(tap: Wiretap, since: int) -> list[list[str]]:
    """The ASINs of each getItemOffersBatch request from exchange `since` on, in order."""
    return [
        [r["uri"].split("/")[-2] for r in json.loads(e.body)["requests"]]
        for e in tap.calls("getItemOffersBatch", since)
    ]


def last_asked(data: Path) -> dict[str, object]:
    """ASIN → when its newest Amazon snapshot was recorded (absent: never observed)."""
    if not (data / "warehouse" / "us.duckdb").exists():
        return {}
    con = duckdb.connect(str(data / "warehouse" / "us.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT asin, max(recorded_at) FROM offer_snapshots GROUP BY ALL").fetchall())
    finally:
        con.close()


def test_the_pull_takes_the_oldest_first_and_resumes(seller, tmp_path, emulator_factory):
    # Amazon's documented rate for getItemOffersBatch (0.1/s, burst 1): a run's first request goes at once, the
    # next one would wait 10 s, past the 2 s budget, so every run asks for 20 ASINs and leaves the rest out
    server = emulator_factory(
        synthetic=None, seed_from=str(seller), channels=load_channels(REPO / "channels.yaml"), rate_scale=0
    )
    tap = Wiretap(server)
    config = {"ops": {"offer_observations": {"config": {"pull_seconds": 2}}}}
    runs: list[list[str]] = []
    for n in range(4):
        # a client state of its own per run: a full bucket, as for runs 10 s apart
        resources = {"warehouse": Warehouse(data_dir=str(seller)), "spapi": spapi_for(server, tmp_path / str(n))}
        before, mark = last_asked(seller), len(tap.exchanges)
        result = dg.materialize(INPUTS, partition_key="us", resources=resources, run_config=config)
        assert result.success
        requests = asked(tap, mark)
        assert len(requests) == 1
        runs.append(requests[0])
        left_out = [a for a in ASINS if a not in requests[0]]
        # never an ASIN observed more recently than one left out (never observed = oldest of all)
        newest_asked = max((before[a] for a in requests[0] if a in before), default=None)
        if newest_asked is not None:
            assert all(a in before and before[a] >= newest_asked for a in left_out)
        meta = result.asset_materializations_for_node("offer_observations")[0].metadata
        assert meta["pulled_asins"].value == 20 and meta["pull_stopped"].value.startswith("budget (20 of 45")
    assert runs[0] == ASINS[:20] and runs[1] == ASINS[20:40]  # never observed first, by ASIN, disjoint
    assert runs[2] == ASINS[40:] + ASINS[:15]  # the 5 never observed, then the oldest: the first run's
    assert runs[3] == ASINS[15:35]
    # the pulled offers are the current picture (Amazon's, newer than the file's row for the same seller)
    con = duckdb.connect(str(seller / "warehouse" / "us.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE _row IS NULL) FROM competitor_prices "
            "WHERE seller_id = 'A1RIVAL00001'"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(45, 45)]


def test_competitor_prices_asks_amazon_nothing(seller, tmp_path, emulator_factory):
    """The prices side (competitor_prices and what follows) prices from the observations: the pull is
    offer_observations' alone (offers_pull_job)."""
    server = emulator_factory(synthetic=None, seed_from=str(seller), channels=load_channels(REPO / "channels.yaml"))
    tap = Wiretap(server)
    resources = {"warehouse": Warehouse(data_dir=str(seller)), "spapi": spapi_for(server, tmp_path)}
    result = dg.materialize(INPUTS[:-1], partition_key="us", resources=resources)
    assert result.success
    assert tap.calls("getItemOffersBatch") == []
    meta = result.asset_materializations_for_node("competitor_prices")[0].metadata
    assert (meta["never_observed"].value, meta["mapped_asins"].value) == (45, 45)
