"""LWA credentials from AWS Secrets Manager (a moto server): a run authenticates against an emulator that accepts
only the secret's credentials, with either target; a wrong or malformed secret fails with a message naming the secret
and never a value of it."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import dagster as dg
import pytest

from emulator.auth import LwaCredentials
from pipelines.resources import spapi_resource
from resources.spapi import LwaError
from resources.spapi_resource import LwaSecretError, SpApiResource, read_lwa_secret
from tests.sync.helpers import MARKETPLACE, materialization, run, start_emulator, submit_rows

SECRET_ID = "sales-channel/lwa"
VAULT = LwaCredentials(
    client_id="amzn1.application-oa2-client.vault",
    client_secret="vault-client-secret-8c41f2",
    refresh_token="Atzr|vault-refresh-token-93be07",
)
VALUES = [VAULT.client_secret, VAULT.refresh_token]


@pytest.fixture
def server(seller, emulator_factory):
    """An emulator that accepts only the vault's credentials (not the documented defaults)."""
    return start_emulator(emulator_factory, seller, credentials=VAULT)


@pytest.fixture
def secret_arn(secrets) -> str:
    document = {
        "client_id": VAULT.client_id,
        "client_secret": VAULT.client_secret,
        "refresh_token": VAULT.refresh_token,
    }
    return secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps(document))["ARN"]


def run_logs(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every entry of the run's event log: Dagster events with their data, and what resources and assets logged."""
    return "\n".join(f"{e.user_message} {e.dagster_event!r}" for e in instance.all_logs(run_id))


def test_a_run_authenticates_with_the_secrets_credentials(seller, server, secret_arn, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SPAPI_ENDPOINT", server.url)
    # The env defaults (the emulator's documented credentials) are refused by this emulator ...
    with dg.build_resources({"spapi": spapi_resource()}) as built, pytest.raises(LwaError):
        built.spapi.client_for("A3DEMOSELLER01").get_listings_item("FBM-1", [MARKETPLACE["us"]])
    # ... the secret's are accepted: the whole channel run pulls and pushes with them.
    monkeypatch.setenv("SPAPI_LWA_SECRET_ID", SECRET_ID)
    spapi = spapi_resource()
    assert (spapi.client_id, spapi.client_secret, spapi.refresh_token) == (None, None, None)
    with dg.instance_for_test() as instance:
        result = run(seller, "us", spapi, instance=instance)
        logs = run_logs(instance, result.run_id)
    assert result.success
    assert set(s for s, _, _ in submit_rows(seller, "us", result.run_id).values()) == {"accepted"}
    assert materialization(result, "listings_submission")["spapi/total/calls"] > 0
    assert f"read from Secrets Manager secret '{SECRET_ID}'" in logs
    for value in VALUES:
        assert value not in logs + caplog.text + repr(spapi), "a secret value leaked"


def test_the_amazon_target_reads_the_secret_by_arn_and_ignores_the_lwa_variables(server, secret_arn, monkeypatch):
    monkeypatch.setenv("SALES_CHANNEL_SPAPI", "amazon")
    monkeypatch.setenv("SPAPI_ENDPOINT", server.url)
    monkeypatch.setenv("SPAPI_LWA_TOKEN_URL", server.token_url)
    monkeypatch.setenv("SPAPI_LWA_SECRET_ID", secret_arn)
    monkeypatch.setenv("SPAPI_LWA_CLIENT_SECRET", "not-the-secret")
    monkeypatch.delenv("AWS_REGION")  # the ARN names the region
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    resource = spapi_resource()
    assert type(resource) is SpApiResource and resource.client_secret is None
    with dg.build_resources({"spapi": resource}) as built:
        item = built.spapi.client_for("A3DEMOSELLER01").get_listings_item("FBM-1", [MARKETPLACE["us"]])
        assert item["sku"] == "FBM-1"
        assert not any(value in repr(built.spapi) for value in VALUES)


def test_a_wrong_secret_id_fails_naming_the_secret(seller, server, secret_arn, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SPAPI_ENDPOINT", server.url)
    monkeypatch.setenv("SPAPI_LWA_SECRET_ID", "sales-channel/no-such-secret")
    with dg.instance_for_test() as instance:
        result = run(seller, "us", spapi_resource(), raise_on_error=False, instance=instance)
        logs = run_logs(instance, result.run_id)
    assert not result.success
    assert "Secrets Manager secret 'sales-channel/no-such-secret' could not be read: ResourceNotFoundException" in logs
    for value in VALUES:
        assert value not in logs + caplog.text


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (
            {"client_id": VAULT.client_id, "client_secret": VAULT.client_secret},
            "lacks (or has a non-string) refresh_token",
        ),
        ({"client_id": VAULT.client_id, "client_secret": VAULT.client_secret, "refresh_token": 7}, "refresh_token"),
        (f"client_secret={VAULT.client_secret}", "must hold a JSON object"),
        ('["' + VAULT.refresh_token + '"]', "must hold a JSON object"),
    ],
    ids=["missing", "not-a-string", "not-json", "not-an-object"],
)
def test_a_malformed_secret_names_what_is_wrong_but_no_value(secrets, secret: Any, problem: str):
    text = secret if isinstance(secret, str) else json.dumps(secret)
    secrets.create_secret(Name="sales-channel/bad", SecretString=text)
    with pytest.raises(LwaSecretError) as info:
        read_lwa_secret("sales-channel/bad")
    message = str(info.value)
    assert problem in message and "'sales-channel/bad'" in message
    traceback_text = "".join(traceback.format_exception(info.value))  # with any chained exception
    for value in VALUES:
        assert value not in traceback_text and value not in repr(info.value)


def test_credentials_are_given_one_way(aws):
    def setup_error(resource: SpApiResource) -> str:
        with pytest.raises(dg.DagsterResourceFunctionError) as info, dg.build_resources({"spapi": resource}):
            pass
        return str(info.value.__cause__)

    both = SpApiResource(client_id="a", client_secret="b", refresh_token="c", lwa_secret_id=SECRET_ID)
    assert "give the LWA credentials one way" in setup_error(both)
    assert "missing: client_secret, refresh_token" in setup_error(SpApiResource(client_id="a"))
