"""No token, secret or refresh token in logs (DEBUG everywhere, httpx and httpcore included), exceptions, reprs or
metadata, across successful calls, refreshes, LWA failures, signature failures and exhausted retries."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest

from resources.spapi import LwaError, QuotaExceeded, SpApiError, Unauthorized
from resources.spapi_resource import SpApiResource
from tests.spapi.conftest import US, control, credentials, fault, listings

AWS_SECRET = "aws-secret-value-0123456789"


def test_secrets_never_leak(emulator_factory, make_client, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "resources.spapi"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    server = emulator_factory(
        verify_sigv4=True, aws_access_key_id="AKIAEMULATOREXAMPLE", aws_secret_access_key=AWS_SECRET
    )
    creds = credentials(server)
    texts: list[str] = []
    client = make_client(server, aws_access_key_id="AKIAEMULATOREXAMPLE", aws_secret_access_key=AWS_SECRET)
    sku = listings(server)[0]["sku"]

    client.get_listings_item(sku, [US])
    control(server, "POST", "/tokens/revoke", json={"access_tokens": True})
    client.get_listings_item(sku, [US])  # refresh after Unauthorized
    client.create_destination("q", "arn:aws:sqs:us-east-1:000000000000:q")  # grantless token
    fault(server, kind="status", status=429, operation="getListingsItem", count=10)
    with pytest.raises(QuotaExceeded) as quota:
        client.get_listings_item(sku, [US])
    control(server, "DELETE", "/faults")
    badly_signed = make_client(
        server, aws_access_key_id="AKIAEMULATOREXAMPLE", aws_secret_access_key="wrong" + AWS_SECRET
    )
    with pytest.raises(Unauthorized) as unauthorized:
        badly_signed.get_listings_item(sku, [US])
    control(server, "POST", "/tokens/revoke", json={"refresh_token": creds["refresh_token"]})
    fresh = make_client(server, state_dir=tmp_path / "other-state")
    with pytest.raises(LwaError) as lwa:
        fresh.get_listings_item(sku, [US])

    errors: list[SpApiError] = [quota.value, unauthorized.value, lwa.value]
    texts += [str(e) for e in errors] + [repr(e) for e in errors] + [json.dumps(e.errors) for e in errors]
    texts += [repr(client), repr(badly_signed), repr(fresh), repr(client.signer), repr(client._seller_provider)]
    texts += [json.dumps(client.counters.as_metadata())]
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    resource = SpApiResource(state_dir=str(tmp_path / "r"), aws_secret_access_key=AWS_SECRET, **creds)
    texts += [repr(resource), str(resource)]
    with dg.build_resources({"spapi": resource}) as built:
        texts += [repr(built.spapi), json.dumps(built.spapi.metadata())]

    cache = json.loads((tmp_path / "state" / "lwa-tokens.json").read_text())
    access_tokens = [entry["access_token"] for entry in cache.values()]
    assert len(access_tokens) == 2  # the seller's and the grantless one
    secrets = [creds["client_secret"], creds["refresh_token"], AWS_SECRET, *access_tokens]
    everything = "\n".join(texts)
    assert "HTTP Request" in everything  # httpx did log, so the check below looked at real log lines
    assert "x-amzn-RequestId" in everything
    for secret in secrets:
        assert secret not in everything, f"a credential leaked (…{secret[-6:]})"
