"""`make up`'s environment selects the deployed mode for every process: the state database beside Dagster's (created
once, idempotently), the lake's bucket on the moto server that serves SQS."""

from __future__ import annotations

from urllib.parse import urlparse

import boto3
import psycopg2
import pytest

from deploy import stack
from resources.state import state_from_env

pytestmark = pytest.mark.slow


def test_make_up_environment_is_the_deployed_mode(postgres_server, s3_url, monkeypatch):
    monkeypatch.setitem(stack.PORTS, "sqs", urlparse(s3_url).port)
    url = postgres_server.create_database("sales_channel_stack_test")
    assert postgres_server.create_database("sales_channel_stack_test") == url  # idempotent: `make up` again
    env = stack._environment(postgres_server, url)
    state = state_from_env(env)
    assert state.deployed and state.dsn == url
    assert state.feeds_path("uk") == "s3://sales-channel-lake/sales-channel/feeds/uk"
    assert env["AWS_ENDPOINT_URL_S3"] == env["SALES_CHANNEL_SQS_ENDPOINT"] == s3_url
    psycopg2.connect(url).close()
    stack._lake_bucket(env)
    stack._lake_bucket(env)
    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    assert stack.LAKE_BUCKET in {b["Name"] for b in s3.list_buckets()["Buckets"]}
