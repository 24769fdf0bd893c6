"""Several sellers on one application: each seller's own LWA grant (`SPAPI_LWA_REFRESH_TOKEN_<SELLER_ID>`), against
an emulator that, like Amazon, ties a refresh token to one seller. The default `SPAPI_LWA_REFRESH_TOKEN` serves only a
channels config with exactly one seller."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resources.spapi_resource import MissingSellerGrant
from seller.config import load_channels
from tests.sync.helpers import spapi_for

SELLER_A, SELLER_B = "A3DEMOSELLER01", "A2SECONDSELLER7"
US = {"name": "us", "seller_id": SELLER_A, "marketplace_id": "ATVPDKIKX0DER", "region": "na"}
CA = {"name": "ca", "seller_id": SELLER_B, "marketplace_id": "A2EUQ1WTGCTBG2", "region": "na"}


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *entries: dict) -> Path:
    config = tmp_path / "channels.yaml"
    config.write_text(yaml.safe_dump({"channels": list(entries)}))
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(config))
    for seller in (SELLER_A, SELLER_B):
        monkeypatch.delenv(f"SPAPI_LWA_REFRESH_TOKEN_{seller}", raising=False)
    return config


def _marketplaces(server, tmp_path: Path, seller: str) -> list[str]:
    spapi = spapi_for(server, tmp_path)
    spapi.setup_for_execution(None)  # type: ignore[arg-type]
    try:
        client = spapi.client_for(seller, region="na")
        return [p["marketplace"]["id"] for p in client.get_marketplace_participations()]
    finally:
        spapi.teardown_after_execution(None)  # type: ignore[arg-type]


def test_each_seller_is_served_with_its_own_refresh_token(emulator_factory, tmp_path, monkeypatch):
    config = _config(tmp_path, monkeypatch, US, CA)
    server = emulator_factory(synthetic=None, channels=load_channels(config))
    # Two sellers configured: the default token is one of theirs, so neither may borrow it; nothing is sent.
    with pytest.raises(MissingSellerGrant, match=f"set SPAPI_LWA_REFRESH_TOKEN_{SELLER_B} ") as missing:
        _marketplaces(server, tmp_path, SELLER_B)
    assert "Atzr|" not in str(missing.value)
    with pytest.raises(MissingSellerGrant, match=f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_A}"):
        _marketplaces(server, tmp_path, SELLER_A)
    monkeypatch.setenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}", f"Atzr|emulator-refresh-token-{SELLER_B}")
    assert _marketplaces(server, tmp_path, SELLER_B) == ["A2EUQ1WTGCTBG2"]
    monkeypatch.setenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_A}", f"Atzr|emulator-refresh-token-{SELLER_A}")
    assert _marketplaces(server, tmp_path, SELLER_A) == ["ATVPDKIKX0DER"]


def test_one_seller_configured_is_served_by_the_default_token_alone(emulator_factory, tmp_path, monkeypatch):
    config = _config(tmp_path, monkeypatch, US)
    server = emulator_factory(synthetic=None, channels=load_channels(config))
    assert _marketplaces(server, tmp_path, SELLER_A) == ["ATVPDKIKX0DER"]
    # A seller the config does not list is not the default token's either.
    with pytest.raises(MissingSellerGrant, match=f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}"):
        _marketplaces(server, tmp_path, SELLER_B)
