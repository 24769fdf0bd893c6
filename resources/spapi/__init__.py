"""The Selling Partner API client: the only code in the project that talks to Amazon. Dagster-free.

    from resources.spapi import SpApiClient
    with SpApiClient(seller_id="A3DEMOSELLER01", client_id=..., client_secret=..., refresh_token=...,
                     region="na", state_dir="/var/lib/channel/spapi") as client:
        for summary in client.iter_inventory_summaries("ATVPDKIKX0DER"):
            ...
        result = client.run_feed("JSON_LISTINGS_FEED", ["ATVPDKIKX0DER"], feed_document)

In Dagster use `resources.spapi_resource.SpApiResource` and its `client_for(seller_id)`.
"""

from resources.spapi._auth import DEFAULT_TOKEN_URL, LwaTokenProvider, TokenCache
from resources.spapi._client import ENDPOINTS, FeeQuery, SpApiClient, SpApiResponse, UsagePlan
from resources.spapi._exceptions import (
    FeedError,
    InvalidInput,
    LwaError,
    QuotaExceeded,
    ReauthorizationRequired,
    ResourceNotFound,
    ServerError,
    SpApiError,
    SpApiTimeout,
    Throttled,
    Unauthorized,
)
from resources.spapi._feeds import FeedPolling, FeedResult, feed_finished_from_notification
from resources.spapi._json import dumps as dumps_json
from resources.spapi._signing import AWS_REGIONS
from resources.spapi._state import shared_state
from resources.spapi._throttle import Throttle
from resources.spapi._transport import Counters, OperationCounters, RetryPolicy
from resources.spapi.operations import NOTIFICATIONS_SCOPE, OPERATIONS, Operation, operation

__all__ = [
    "AWS_REGIONS",
    "Counters",
    "DEFAULT_TOKEN_URL",
    "ENDPOINTS",
    "FeeQuery",
    "FeedError",
    "FeedPolling",
    "FeedResult",
    "InvalidInput",
    "LwaError",
    "ReauthorizationRequired",
    "LwaTokenProvider",
    "NOTIFICATIONS_SCOPE",
    "OPERATIONS",
    "Operation",
    "OperationCounters",
    "QuotaExceeded",
    "ResourceNotFound",
    "RetryPolicy",
    "ServerError",
    "SpApiClient",
    "SpApiError",
    "SpApiResponse",
    "SpApiTimeout",
    "Throttle",
    "Throttled",
    "TokenCache",
    "Unauthorized",
    "UsagePlan",
    "dumps_json",
    "feed_finished_from_notification",
    "operation",
    "shared_state",
]
