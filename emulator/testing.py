"""Pytest fixtures: `emulator` (a started, seeded emulator), `emulator_factory` (start your own) and `moto_sqs` (an
SQS endpoint). Enabled for the whole suite by `pytest_plugins = ["emulator.testing"]` in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulator.server import EmulatorOptions, EmulatorServer
from seller.config import Channel, parse_channels

__all__ = ["TEST_CHANNELS", "emulator", "emulator_factory", "moto_sqs", "lwa_token"]

# A small dedicated config: two marketplaces of one seller (US, DE) and Japan's zero-decimal currency.
TEST_CHANNELS: dict[str, Channel] = parse_channels(
    {
        "channels": [
            {"name": "us", "seller_id": "A3DEMOSELLER01", "marketplace_id": "ATVPDKIKX0DER", "region": "na"},
            {"name": "de", "seller_id": "A3DEMOSELLER01", "marketplace_id": "A1PA6795UKMFR9", "region": "eu"},
            {"name": "jp", "seller_id": "A3DEMOSELLER01", "marketplace_id": "A1VC38T7YXB528", "region": "fe"},
        ]
    },
    source="emulator.testing",
)

# Fast defaults for tests: limits on but refilled 1000× faster, feeds step instantly.
TEST_DEFAULTS: dict[str, Any] = {
    "synthetic": 200,
    "channels": TEST_CHANNELS,
    "rate_scale": 1000.0,
    "feed_step_seconds": 0.0,
}


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorServer]]:
    """Call with EmulatorOptions fields (test defaults fill the rest); every server started is stopped."""
    started: list[EmulatorServer] = []

    def start(**overrides: Any) -> EmulatorServer:
        server = EmulatorServer(EmulatorOptions(**{**TEST_DEFAULTS, **overrides}))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    return emulator_factory()


@pytest.fixture
def moto_sqs() -> Iterator[str]:
    """A moto server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def lwa_token(server: EmulatorServer, scope: str | None = None) -> str:
    """An access token from the emulator's LWA endpoint (seller token, or grantless with `scope`)."""
    import httpx

    creds = server.state.store.tokens.credentials
    data = {"client_id": creds.client_id, "client_secret": creds.client_secret}
    if scope:
        data.update(grant_type="client_credentials", scope=scope)
    else:
        data.update(grant_type="refresh_token", refresh_token=creds.refresh_token)
    response = httpx.post(server.token_url, data=data)
    response.raise_for_status()
    return response.json()["access_token"]
