"""Several sellers on one application: each seller's own LWA grant (`SPAPI_LWA_REFRESH_TOKEN_<SELLER_ID>`), against
an emulator that, like Amazon, ties a refresh token to one seller."""

from __future__ import annotations

import yaml

from seller.config import load_channels
from tests.sync.helpers import spapi_for

SELLER_A, SELLER_B = "A3DEMOSELLER01", "A2SECONDSELLER7"


def test_each_seller_is_served_with_its_own_refresh_token(emulator_factory, tmp_path, monkeypatch):
    config = tmp_path / "channels.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "channels": [
                    {"name": "us", "seller_id": SELLER_A, "marketplace_id": "ATVPDKIKX0DER", "region": "na"},
                    {"name": "ca", "seller_id": SELLER_B, "marketplace_id": "A2EUQ1WTGCTBG2", "region": "na"},
                ]
            }
        )
    )
    server = emulator_factory(synthetic=None, channels=load_channels(config))
    monkeypatch.delenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}", raising=False)

    def marketplaces(seller: str) -> list[str]:
        with_token = spapi_for(server, tmp_path)
        with_token.setup_for_execution(None)  # type: ignore[arg-type]
        try:
            client = with_token.client_for(seller, region="na")
            return [p["marketplace"]["id"] for p in client.get_marketplace_participations()]
        finally:
            with_token.teardown_after_execution(None)  # type: ignore[arg-type]

    # Without its own grant, seller B's calls carry seller A's authorization: Amazon answers for seller A.
    assert marketplaces(SELLER_B) == ["ATVPDKIKX0DER"]
    monkeypatch.setenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}", f"Atzr|emulator-refresh-token-{SELLER_B}")
    assert marketplaces(SELLER_B) == ["A2EUQ1WTGCTBG2"]
    assert marketplaces(SELLER_A) == ["ATVPDKIKX0DER"]
