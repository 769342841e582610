"""The local org's OAuth side on the wire: JWT bearer and refresh-token grants, and revoke."""
from __future__ import annotations

import sqlite3
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfbulk_nb.localorg import LocalOrg
from sfbulk_nb.localorg.identity import JWT_BEARER


@pytest.fixture(scope="module")
def private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def trusted(org, private_key):
    org.register_jwt_key(private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_key


def token_call(org, **form) -> requests.Response:
    return requests.post(f"{org.instance_url}/services/oauth2/token", data=form, timeout=10)


def api_status(org, access_token: str) -> int:
    return requests.get(f"{org.instance_url}/services/data/v66.0/limits", timeout=10,
                        headers={"Authorization": f"Bearer {access_token}"}).status_code


def assertion(org, key, **changes) -> str:
    claims = {"iss": org.client_id, "sub": org.username, "aud": "https://login.salesforce.com",
              "exp": int(time.time()) + 180, **changes}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key,
                      algorithm="RS256")


def test_jwt_bearer_grant_accepts_salesforce_audiences_and_the_orgs_own_url(org, trusted):
    for aud in ("https://login.salesforce.com", "https://test.salesforce.com",
                org.instance_url):
        r = token_call(org, grant_type=JWT_BEARER, assertion=assertion(org, trusted, aud=aud))
        assert r.status_code == 200, r.text
        body = r.json()
        assert "refresh_token" not in body and body["instance_url"] == org.instance_url
        assert api_status(org, body["access_token"]) == 200


@pytest.mark.parametrize("changes, error", [
    (dict(aud="https://acme.my.salesforce.com"), ("invalid_grant", "audience is invalid")),
    (dict(exp=int(time.time()) - 10), ("invalid_grant", "expired authorization code")),
    (dict(exp=None), ("invalid_grant", "invalid assertion")),
    (dict(iss="3MVGnope"), ("invalid_client_id", "client identifier invalid")),
    (dict(sub="nobody@example.com"), ("invalid_grant", "user hasn't approved this consumer")),
])
def test_jwt_bearer_refusals_have_salesforces_shape(org, trusted, changes, error):
    r = token_call(org, grant_type=JWT_BEARER, assertion=assertion(org, trusted, **changes))
    assert (r.status_code, r.json()) == (400, {"error": error[0], "error_description": error[1]})


def test_jwt_signed_by_an_untrusted_key_or_another_algorithm_is_invalid(org, trusted):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": org.client_id, "sub": org.username, "aud": org.instance_url,
              "exp": int(time.time()) + 60}
    for forged in (assertion(org, stranger), jwt.encode(claims, org.client_secret, "HS256"),
                   "not.a.jwt"):
        r = token_call(org, grant_type=JWT_BEARER, assertion=forged)
        assert r.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}
    org.reset()  # forgets the key: nothing can verify an assertion any more
    r = token_call(org, grant_type=JWT_BEARER, assertion=assertion(org, trusted))
    assert r.json()["error_description"] == "invalid assertion"


def test_register_jwt_key_wants_an_rsa_public_key(org):
    with pytest.raises(ValueError):
        org.register_jwt_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_refresh_token_grant_outlives_expired_sessions(org):
    refresh = org.issue_refresh_token()
    first = token_call(org, grant_type="refresh_token", refresh_token=refresh,
                       client_id=org.client_id)
    assert first.status_code == 200 and "refresh_token" not in first.json()
    org.expire_tokens()
    assert api_status(org, first.json()["access_token"]) == 401
    again = token_call(org, grant_type="refresh_token", refresh_token=refresh,
                       client_id=org.client_id, client_secret=org.client_secret)
    assert api_status(org, again.json()["access_token"]) == 200
    for form, error in ((dict(refresh_token="5Aep861nope", client_id=org.client_id),
                         "invalid_grant"),
                        (dict(refresh_token=refresh, client_id="3MVGnope"), "invalid_client_id"),
                        (dict(refresh_token=refresh, client_id=org.client_id,
                              client_secret="wrong"), "invalid_client")):
        r = token_call(org, grant_type="refresh_token", **form)
        assert (r.status_code, r.json()["error"]) == (400, error)


def test_password_and_client_credentials_grants_issue_no_refresh_token(org):
    for form in (dict(grant_type="password", username=org.username, password=org.password),
                 dict(grant_type="client_credentials")):
        r = token_call(org, client_id=org.client_id, client_secret=org.client_secret, **form)
        assert r.status_code == 200 and "refresh_token" not in r.json()


def test_revoke_an_access_token(org):
    token = token_call(org, grant_type="client_credentials", client_id=org.client_id,
                       client_secret=org.client_secret).json()["access_token"]
    other = org.access_token
    r = requests.post(f"{org.instance_url}/services/oauth2/revoke", data={"token": token},
                      timeout=10)
    assert r.status_code == 200
    assert api_status(org, token) == 401 and api_status(org, other) == 200
    again = requests.get(f"{org.instance_url}/services/oauth2/revoke", params={"token": token},
                         timeout=10)
    assert (again.status_code, again.json()) == (
        400, {"error": "invalid_token", "error_description": "invalid token"})


def test_revoking_a_refresh_token_revokes_its_access_tokens(org):
    refresh = org.issue_refresh_token()
    issued = [token_call(org, grant_type="refresh_token", refresh_token=refresh,
                         client_id=org.client_id).json()["access_token"] for _ in range(2)]
    other = org.access_token
    r = requests.get(f"{org.instance_url}/services/oauth2/revoke", params={"token": refresh},
                     timeout=10)
    assert r.status_code == 200
    assert [api_status(org, t) for t in issued] == [401, 401] and api_status(org, other) == 200
    r = token_call(org, grant_type="refresh_token", refresh_token=refresh,
                   client_id=org.client_id)
    assert r.json() == {"error": "invalid_grant",
                        "error_description": "expired access/refresh token"}


def test_org_files_from_before_refresh_tokens_are_upgraded(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the tokens table as older versions wrote it
        conn.execute("CREATE TABLE tokens (token TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
                     "issued_at REAL NOT NULL, expires_at REAL NOT NULL)")
    conn.close()
    with LocalOrg(path) as org:
        refresh = org.issue_refresh_token()
        r = token_call(org, grant_type="refresh_token", refresh_token=refresh,
                       client_id=org.client_id)
        assert api_status(org, r.json()["access_token"]) == 200
