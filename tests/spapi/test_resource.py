"""SpApiResource in Dagster: EnvVar wiring, a client per seller, counters as asset metadata."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from resources.spapi_resource import ENV_VARS, SpApiResource
from tests.spapi.conftest import SELLER, US, credentials, listings


def _env(monkeypatch: pytest.MonkeyPatch, server, tmp_path: Path) -> None:
    creds = credentials(server)
    monkeypatch.setenv("SPAPI_LWA_CLIENT_ID", creds["client_id"])
    monkeypatch.setenv("SPAPI_LWA_CLIENT_SECRET", creds["client_secret"])
    monkeypatch.setenv("SPAPI_LWA_REFRESH_TOKEN", creds["refresh_token"])
    monkeypatch.setenv("SPAPI_ENDPOINT", server.url)
    monkeypatch.setenv("SPAPI_LWA_TOKEN_URL", server.token_url)
    monkeypatch.delenv("SPAPI_AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("SPAPI_AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("SALES_CHANNEL_DATA", str(tmp_path / "data"))


def test_resource_from_env_in_an_asset(emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, emulator, tmp_path)
    sku = listings(emulator)[0]["sku"]

    @dg.asset
    def listing(spapi: SpApiResource) -> dg.MaterializeResult:
        client = spapi.client_for(SELLER)
        assert client is spapi.client_for(SELLER)
        item = client.get_listings_item(sku, [US])
        return dg.MaterializeResult(metadata={"sku": item["sku"], **spapi.metadata()})

    resource = SpApiResource.from_env(requests_per_minute=0)
    assert resource.endpoint == ENV_VARS["endpoint"]  # an EnvVar holds the name until Dagster resolves it
    result = dg.materialize([listing], resources={"spapi": resource})
    assert result.success
    metadata = result.asset_materializations_for_node("listing")[0].metadata
    assert metadata["spapi/getListingsItem/calls"].value == 1
    assert metadata["spapi/total/throttled"].value == 0
    # The default state directory is the seller's data directory, shared by every run on the machine.
    assert (tmp_path / "data" / "spapi" / "throttle.sqlite3").exists()
    assert (tmp_path / "data" / "spapi" / "lwa-tokens.json").exists()


def test_other_sellers_get_their_own_client(emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, emulator, tmp_path)
    with dg.build_resources({"spapi": SpApiResource.from_env(state_dir=str(tmp_path / "s"))}) as built:
        spapi = built.spapi
        a = spapi.client_for(SELLER)
        b = spapi.client_for("A1OTHERSELLER9", refresh_token="Atzr|other-seller")
        assert a is not b and b.seller_id == "A1OTHERSELLER9"
        assert a.counters is b.counters  # one set of per-run counters
        assert "Atzr|other-seller" not in repr(b)


def test_module_caps_from_the_environment_for_either_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines.resources import spapi_resource

    for var in ("SPAPI_LWA_SECRET_ID", "SPAPI_REQUESTS_PER_MINUTE", "SPAPI_REQUESTS_PER_DAY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SALES_CHANNEL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SALES_CHANNEL_SPAPI", "emulator")
    monkeypatch.setenv("SPAPI_ENDPOINT", "http://127.0.0.1:9")  # never called: nothing is sent here

    def caps(resource: SpApiResource) -> list[tuple[str, int]]:
        """The caps of the throttle a run's client gets (the resource set up as Dagster does)."""
        with dg.build_resources({"spapi": resource}) as built:
            client = built.spapi.client_for(SELLER, refresh_token="Atzr|test")
            return [(window.kind, window.cap) for window in client.throttle.windows]

    assert caps(spapi_resource()) == []  # the emulator: off by default
    monkeypatch.setenv("SPAPI_REQUESTS_PER_MINUTE", "30")
    monkeypatch.setenv("SPAPI_REQUESTS_PER_DAY", "36000")
    assert caps(spapi_resource()) == [("minute", 30), ("day", 36_000)]  # Amazon's, against the emulator

    monkeypatch.setenv("SALES_CHANNEL_SPAPI", "amazon")
    lwa = {"CLIENT_ID": "amzn1.application-oa2-client.t", "CLIENT_SECRET": "s", "REFRESH_TOKEN": "r"}
    for name, value in lwa.items():
        monkeypatch.setenv(f"SPAPI_LWA_{name}", value)
    monkeypatch.delenv("SPAPI_REQUESTS_PER_DAY")
    monkeypatch.setenv("SPAPI_REQUESTS_PER_MINUTE", "10")
    assert caps(spapi_resource()) == [("minute", 10), ("day", 36_000)]  # Amazon: the one set replaces its cap
    monkeypatch.setenv("SPAPI_REQUESTS_PER_MINUTE", "0")
    assert caps(spapi_resource()) == [("day", 36_000)]
    monkeypatch.delenv("SPAPI_REQUESTS_PER_MINUTE")
    assert caps(spapi_resource()) == [("minute", 30), ("day", 36_000)]
    for bad in ("-1", "thirty", "2.5"):
        monkeypatch.setenv("SPAPI_REQUESTS_PER_DAY", bad)
        with pytest.raises(ValueError, match="SPAPI_REQUESTS_PER_DAY must be a whole number"):
            spapi_resource()
