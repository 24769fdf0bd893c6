"""The SP-API client's shared state in the deployed mode: the throttle in Postgres, access tokens in the run's memory
only, nothing under the state directory, and no token (access or refresh) stored anywhere."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from resources.spapi import SpApiClient
from resources.spapi_resource import SpApiResource
from tests.spapi.conftest import FAST_RETRY, SELLER, US, credentials, listings

pytestmark = pytest.mark.slow


def _schema_text(dsn: str) -> str:
    """Every row of every table in schema sales_channel, as text."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'sales_channel'")
        tables = [row[0] for row in cur.fetchall()]
        text = []
        for table in tables:
            cur.execute(f"SELECT t::text FROM sales_channel.{table} AS t")
            text += [row[0] for row in cur.fetchall()]
    return "\n".join(text)


def test_the_deployed_mode_writes_nothing_under_the_state_dir(
    emulator, state_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SALES_CHANNEL_STATE", state_dsn)
    monkeypatch.setenv("SALES_CHANNEL_LAKE", "s3://unused/lake")
    state_dir = tmp_path / "state"
    creds = credentials(emulator)
    sku = listings(emulator)[0]["sku"]
    resource = SpApiResource(
        **creds, endpoint=emulator.url, token_url=emulator.token_url, state_dir=str(state_dir), max_attempts=4
    )
    with dg.build_resources({"spapi": resource}) as resources:
        spapi = resources.spapi
        first = spapi.client_for(SELLER)
        first.get_listings_item(sku, [US])
        first.get_listings_item(sku, [US])
        other = spapi.client_for(SELLER, region="eu")  # another client of the run: the same memory cache
        other.get_listings_item(sku, [US])
        assert (first.lwa_refreshes, other.lwa_refreshes) == (1, 0)
    plain = SpApiClient(
        seller_id=SELLER,
        **creds,
        endpoint=emulator.url,
        token_url=emulator.token_url,
        state_dir=state_dir,
        retry=FAST_RETRY,
    )
    plain.get_listings_item(sku, [US])
    plain.close()
    assert plain.lwa_refreshes == 1  # a client of its own: its own token (a token per run)
    assert not state_dir.exists()
    # The decisions went to Postgres, and no token is stored there.
    stored = _schema_text(state_dsn)
    assert f"({SELLER},minute," in stored  # the module cap counted the run's four calls
    assert creds["refresh_token"] not in stored and creds["client_secret"] not in stored
    assert "Atza|" not in stored  # the emulator's access tokens
