"""SigV4 signing against an emulator that verifies signatures, and unsigned mode."""

from __future__ import annotations

import httpx
import pytest

from resources.spapi import ResourceNotFound, Unauthorized
from tests.spapi.conftest import US, listings

AWS_KEY = "AKIAEMULATOREXAMPLE"


def test_signed_requests_pass_verification(emulator_factory, make_client) -> None:
    server = emulator_factory(verify_sigv4=True, aws_access_key_id=AWS_KEY, aws_secret_access_key="emulator-secret")
    client = make_client(server, aws_access_key_id=AWS_KEY, aws_secret_access_key="emulator-secret")
    sku = listings(server)[0]["sku"]
    assert client.get_listings_item(sku, [US], included_data=["summaries", "offers"])["sku"] == sku
    # Query strings with commas and a SKU that needs percent-encoding must canonicalise identically.
    with pytest.raises(ResourceNotFound):  # 404, not 403: the signature matched
        client.get_listings_item("NO SUCH/SKU+1", [US])
    assert client.signer is not None and client.signer.aws_region == "us-east-1"


def test_bad_signature_is_rejected(emulator_factory, make_client) -> None:
    server = emulator_factory(verify_sigv4=True, aws_access_key_id=AWS_KEY, aws_secret_access_key="emulator-secret")
    client = make_client(server, aws_access_key_id=AWS_KEY, aws_secret_access_key="wrong-secret")
    try:
        client.get_listings_item(listings(server)[0]["sku"], [US])
    except Unauthorized as exc:
        assert exc.status == 403
    else:
        raise AssertionError("a request signed with the wrong secret was accepted")


def test_unsigned_mode_sends_no_authorization_header(emulator, make_client) -> None:
    seen: list[httpx.Request] = []
    client = make_client(emulator)
    client._http.event_hooks["request"].append(seen.append)
    sku = listings(emulator)[0]["sku"]
    client.get_listings_item(sku, [US])
    assert client.signer is None
    assert "authorization" not in seen[-1].headers and "x-amz-date" not in seen[-1].headers
    assert seen[-1].headers["x-amz-access-token"].startswith("Atza|")
