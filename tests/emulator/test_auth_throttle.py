"""LWA grants and errors, the 403 shape, token expiry and revocation, SigV4 verification, and throttling."""

from __future__ import annotations

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from emulator.testing import SELLER, US, Api, conform, lwa_token


def _token_request(server, **fields):
    creds = server.state.store.tokens.credentials
    data = {"client_id": creds.client_id, "client_secret": creds.client_secret, **fields}
    return httpx.post(server.token_url, data=data)


def test_lwa_grants_and_errors(emulator):
    ok = _token_request(emulator, grant_type="refresh_token", refresh_token="Atzr|emulator-refresh-token")
    assert ok.status_code == 200
    body = ok.json()
    assert body["access_token"].startswith("Atza|") and body["expires_in"] == 3600 and body["token_type"] == "bearer"
    grantless = _token_request(emulator, grant_type="client_credentials", scope="sellingpartnerapi::notifications")
    assert grantless.status_code == 200 and grantless.json()["access_token"].startswith("Atza|")
    # JSON bodies are accepted too (Amazon's Java library posts JSON)
    creds = emulator.state.store.tokens.credentials
    as_json = httpx.post(
        emulator.token_url,
        json={
            "grant_type": "refresh_token",
            "refresh_token": creds.refresh_token,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    assert as_json.status_code == 200
    unknown = _token_request(emulator, grant_type="refresh_token", refresh_token="Atzr|nope")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    bad_scope = _token_request(emulator, grant_type="client_credentials", scope="sellingpartnerapi::everything")
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    bad_client = httpx.post(
        emulator.token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": "x",
            "client_secret": "y",
            "refresh_token": creds.refresh_token,
        },
    )
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"


def _assert_denied(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["code"] == "Unauthorized"
    assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert response.headers["x-amzn-RequestId"]
    assert "x-amzn-RateLimit-Limit" not in response.headers
    conform("listingsItems_2021-08-01", "getListingsItem", 403, response.json())


def test_missing_unknown_expired_and_wrong_kind_tokens(api):
    path = f"/listings/2021-08-01/items/{SELLER}/SKU-0000001"
    params = {"marketplaceIds": US}
    _assert_denied(api.http.get(path, params=params))
    _assert_denied(api.http.get(path, params=params, headers={"x-amz-access-token": "Atza|forged"}))
    assert api("GET", path, params=params).status_code in (200, 404)
    api.control("POST", "/clock/advance", json={"seconds": 3599})
    assert api("GET", path, params=params).status_code in (200, 404)
    api.control("POST", "/clock/advance", json={"seconds": 2})
    _assert_denied(api("GET", path, params=params))
    grantless = Api(api.server, scope="sellingpartnerapi::notifications")
    _assert_denied(grantless("GET", path, params=params))
    # a seller token on a grantless operation is denied as well
    _assert_denied(Api(api.server)("GET", "/notifications/v1/destinations"))


def test_revoked_refresh_token(api):
    api.control("POST", "/tokens/revoke", json={"refresh_token": "Atzr|emulator-refresh-token"})
    _assert_denied(api("GET", "/sellers/v1/marketplaceParticipations"))
    again = _token_request(api.server, grant_type="refresh_token", refresh_token="Atzr|emulator-refresh-token")
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    api.control("POST", "/tokens/restore", json={})
    assert Api(api.server)("GET", "/sellers/v1/marketplaceParticipations").status_code == 200


def test_sigv4_verification(emulator_factory):
    server = emulator_factory(verify_sigv4=True, synthetic=20)
    token = lwa_token(server)
    url = f"{server.url}/sellers/v1/marketplaceParticipations"

    def signed(secret: str) -> dict[str, str]:
        request = AWSRequest(method="GET", url=url, headers={"x-amz-access-token": token})
        SigV4Auth(Credentials("AKIAEMULATOREXAMPLE", secret), "execute-api", "us-east-1").add_auth(request)
        return dict(request.headers.items())

    good = httpx.get(url, headers=signed("emulator-aws-secret-access-key"))
    assert good.status_code == 200, good.text
    bad = httpx.get(url, headers=signed("wrong-secret"))
    assert bad.status_code == 403 and "signature" in bad.json()["errors"][0]["details"].lower()
    unsigned = httpx.get(url, headers={"x-amz-access-token": token})
    assert unsigned.status_code == 403


def test_signatures_are_ignored_by_default(api):
    response = api(
        "GET",
        "/sellers/v1/marketplaceParticipations",
        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=garbage, SignedHeaders=host, Signature=00"},
    )
    assert response.status_code == 200


def test_throttling_burst_429_and_recovery_at_the_documented_rate(emulator_factory):
    # A nearly frozen clock (time_scale 0.001) so real time cannot refill the bucket; time moves by control API.
    server = emulator_factory(rate_scale=1.0, time_scale=0.001, synthetic=20)
    api = Api(server)
    path = f"/listings/2021-08-01/items/{SELLER}/NO-SUCH-SKU"
    # getListingsItem: documented rate 5/s, burst 10.
    statuses = [api("GET", path, params={"marketplaceIds": US}).status_code for _ in range(10)]
    assert statuses == [404] * 10
    throttled = api("GET", path, params={"marketplaceIds": US})
    assert throttled.status_code == 429
    assert throttled.json() == {
        "errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota for the requested resource."}]
    }
    assert throttled.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert "x-amzn-RateLimit-Limit" not in throttled.headers and throttled.headers["x-amzn-RequestId"]
    conform("listingsItems_2021-08-01", "getListingsItem", 429, throttled.json())
    api.control("POST", "/clock/advance", json={"seconds": 0.2})  # 1/rate = 0.2 s → exactly one token
    recovered = api("GET", path, params={"marketplaceIds": US})
    assert recovered.status_code == 404 and recovered.headers["x-amzn-RateLimit-Limit"] == "5.0"
    assert api("GET", path, params={"marketplaceIds": US}).status_code == 429
    # buckets are per operation: another operation still has its burst
    assert api("GET", "/sellers/v1/marketplaceParticipations").status_code == 200


def test_rate_scale_zero_turns_limits_off(emulator_factory):
    api = Api(emulator_factory(rate_scale=0, synthetic=20))
    codes = {api("GET", "/sellers/v1/marketplaceParticipations").status_code for _ in range(40)}
    assert codes == {200}


def test_unknown_path_and_bad_input(api):
    missing = api("GET", "/nothing/here")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NotFound"
    bad = api("GET", f"/listings/2021-08-01/items/{SELLER}/X")
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "InvalidInput"
    assert bad.headers["x-amzn-RateLimit-Limit"]
