"""Two sellers configured, one without its own LWA grant: its Dagster run fails before sending anything, naming the
variable to set, and the other seller's run goes through. The default refresh token is never lent to another seller."""

from __future__ import annotations

import yaml

from pipelines import partitions
from seller.config import load_channels
from tests.sync.helpers import control, run, seller_dir, spapi_for

SELLER_A, SELLER_B = "A3DEMOSELLER01", "A2SECONDSELLER7"


def _requests_seen(server) -> int:
    """SP-API requests the emulator received: hits of a 1-ms latency fault set on every operation."""
    return sum(hit["count"] for hit in control(server, "GET", "/faults")["hits"] if hit["kind"] == "latency")


def test_a_seller_without_its_own_grant_fails_before_any_call(emulator_factory, tmp_path, monkeypatch):
    data = seller_dir(tmp_path)
    config = tmp_path / "channels.yaml"
    entries = [
        {"name": "us", "seller_id": SELLER_A, "marketplace_id": "ATVPDKIKX0DER", "region": "na"},
        {"name": "uk", "seller_id": SELLER_B, "marketplace_id": "A1F83G8C2ARO7P", "region": "eu"},
        {"name": "de", "seller_id": SELLER_A, "marketplace_id": "A1PA6795UKMFR9", "region": "eu"},
    ]
    config.write_text(yaml.safe_dump({"channels": entries}))
    channels = load_channels(config)
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(config))
    for name, channel in channels.items():  # the code location's partitions, as if loaded from this config
        monkeypatch.setitem(partitions.CHANNELS, name, channel)
    monkeypatch.setenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_A}", f"Atzr|emulator-refresh-token-{SELLER_A}")
    monkeypatch.delenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}", raising=False)
    server = emulator_factory(synthetic=None, seed_from=str(data), channels=channels)
    control(server, "POST", "/faults", json={"kind": "latency", "operation": "*", "count": 10**6, "latency_ms": 1})
    spapi = spapi_for(server, tmp_path)

    before = _requests_seen(server)
    failed = run(data, "uk", spapi, raise_on_error=False)
    assert not failed.success
    messages = []
    for event in failed.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:  # Dagster's step error, then the exception it wraps
            messages.append(error.message)
            error = error.cause
    text = " | ".join(messages)
    assert f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}" in text
    assert "Atzr|" not in text
    assert _requests_seen(server) == before  # not one request went out for seller B's channel

    succeeded = run(data, "us", spapi)
    assert succeeded.success
    assert _requests_seen(server) > before  # the count does see requests: seller A's went out


def test_one_seller_runs_with_the_default_token_alone(emulator_factory, tmp_path, monkeypatch):
    data = seller_dir(tmp_path)
    config = tmp_path / "channels.yaml"
    entries = [{"name": "us", "seller_id": SELLER_A, "marketplace_id": "ATVPDKIKX0DER", "region": "na"}]
    config.write_text(yaml.safe_dump({"channels": entries}))
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(config))
    monkeypatch.delenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_A}", raising=False)
    server = emulator_factory(synthetic=None, seed_from=str(data), channels=load_channels(config))
    result = run(data, "us", spapi_for(server, tmp_path))
    assert result.success
