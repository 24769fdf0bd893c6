"""Shared helpers for the sync tests: a seller data dir, an emulator holding the same listings, one pipeline run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx

from assets.feed_files import feed_assets
from assets.history import sync_history
from assets.inputs import input_assets
from assets.inventory import reconciled_inventory
from assets.offers import offer_observations
from assets.prices import buybox_prices
from assets.publish import listings_submission
from emulator.server import EmulatorServer
from pipelines.resources import EMULATOR_DEFAULTS
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from seller.config import load_channels

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "tests" / "data" / "small"
# The channel pipeline's assets (as pipelines.definitions lists them), without the other engineer's additions.
ALL_ASSETS = [*input_assets, offer_observations, reconciled_inventory, buybox_prices, *feed_assets, sync_history]
ALL_ASSETS.append(listings_submission)
MARKETPLACE = {"us": "ATVPDKIKX0DER", "uk": "A1F83G8C2ARO7P", "de": "A1PA6795UKMFR9"}


def seller_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    return data


def start_emulator(factory: Any, data: Path, **options: Any) -> EmulatorServer:
    """An emulator seeded from the seller's files with the pipeline's channels (us, uk, de)."""
    return factory(synthetic=None, seed_from=str(data), channels=load_channels(REPO / "channels.yaml"), **options)


def spapi_for(server: EmulatorServer, tmp_path: Path, **overrides: Any) -> SpApiResource:
    fields: dict[str, Any] = {
        **EMULATOR_DEFAULTS,
        "endpoint": server.url,
        "token_url": server.token_url,
        "state_dir": str(tmp_path / "spapi"),
        "requests_per_minute": 0,
        "requests_per_day": 0,
        "max_attempts": 2,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "max_total_seconds": 10.0,
        "feed_window_seconds": 1.0,
    }
    fields.update(overrides)
    return SpApiResource(**fields)


def run(
    data: Path, channel: str, spapi: SpApiResource, *, push: dict[str, Any] | None = None, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    config = {"poll_initial_seconds": 0.05, **(push or {})}
    return dg.materialize(
        ALL_ASSETS,
        partition_key=channel,
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi},
        run_config={"ops": {"listings_submission": {"config": config}}},
        **kwargs,
    )


OFFLINE = {
    name: {"config": {"offline": True}}
    for name in ("fba_inventory", "competitor_prices", "offer_observations", "listings_submission")
}


def prepare_offline(data: Path, channel: str, spapi: SpApiResource) -> None:
    """Every asset of the channel from the seller's files alone (no pull, nothing pushed): what a push starts from."""
    resources = {"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi}
    assert dg.materialize(ALL_ASSETS, partition_key=channel, resources=resources, run_config={"ops": OFFLINE}).success


def query(data: Path, channel: str, sql: str, params: Any = None) -> list[tuple]:
    con = duckdb.connect(str(data / "warehouse" / f"{channel}.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    finally:
        con.close()


def submit_rows(data: Path, channel: str, run_id: str) -> dict[str, tuple]:
    """sku → (status, code, message) of the run's `submit` rows."""
    rows = query(
        data,
        channel,
        "SELECT sku, status, code, message FROM sync_history WHERE run_id = ? AND operation = 'submit'",
        [run_id],
    )
    assert len(rows) == len({r[0] for r in rows}), "one final submit status per SKU and run"
    return {sku: (status, code, message) for sku, status, code, message in rows}


def control(server: EmulatorServer, method: str, path: str, **kw: Any) -> Any:
    response = httpx.request(method, server.url + "/_emulator" + path, timeout=10, **kw)
    assert response.status_code < 300, response.text
    return response.json()


def listing(server: EmulatorServer, sku: str, channel: str = "us") -> dict[str, Any]:
    found = control(server, "GET", "/listings", params={"sku": sku, "marketplaceId": MARKETPLACE[channel]})
    return found["listings"][0]


def materialization(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}
