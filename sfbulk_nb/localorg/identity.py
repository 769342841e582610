"""Who the local org is: its Organization and User records, credentials and tokens.

The first start of an org file seeds one Organization, one User (the API user) and one
connected app (client id and secret). Credentials are generated per org file and kept in
it, so two orgs never share a password or a token.

Token grants (POST /services/oauth2/token); a refusal is a 400 in Salesforce's OAuth shape,
{"error": "invalid_grant", "error_description": "..."}, with Salesforce's texts:

    password             client_id, client_secret, username, password
    client_credentials   client_id, client_secret (in the form or HTTP Basic)
    refresh_token        refresh_token, client_id, client_secret (optional; checked if sent)
    jwt-bearer           assertion: RS256 JWT, iss=client_id, sub=username,
                         aud=https://login.salesforce.com | https://test.salesforce.com | the
                         org's own URL, exp in the future; signed by the key given to
                         register_jwt_key() (needs PyJWT and cryptography)

As in Salesforce, none of these grants issues a refresh token (that takes the web-server or
user-agent flow, with a login page the local org does not have): issue_refresh_token()
stands in for it. POST /services/oauth2/revoke `token=` revokes an access token, or a
refresh token together with the access tokens issued for it.
"""
from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from typing import Callable

from .errors import ApiError
from .store import Store, table_name

# Salesforce's default session timeout is two hours of inactivity; ours simply expires.
TOKEN_LIFETIME_S = 2 * 60 * 60
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# A JWT's aud may name Salesforce's login hosts (so a client written for a real org works
# unchanged) or the org's own URL.
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass(frozen=True)
class Credentials:
    org_id: str
    user_id: str
    username: str
    password: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # secrets stay out of reprs and logs
        return f"Credentials(org_id={self.org_id!r}, username={self.username!r}, ...)"


class Identity:
    def __init__(self, store: Store, clock: Callable[[], float]):
        self.store = store
        self.clock = clock
        self.credentials = self._load_or_seed()
        self._seed_standard_pricebook()

    def _load_or_seed(self) -> Credentials:
        keys = ("org_id", "user_id", "username", "password", "client_id", "client_secret")
        found = {k: self.store.get_meta(k) for k in keys}
        if all(found.values()):
            return Credentials(**found)
        org_id = self.store.allocate_ids("00D", 1)[0]
        user_id = self.store.allocate_ids("005", 1)[0]
        creds = Credentials(
            org_id=org_id, user_id=user_id, username="analyst@sfbulk-nb.local",
            password=secrets.token_urlsafe(12),
            client_id="3MVG9" + secrets.token_urlsafe(32).replace("-", "A").replace("_", "B"),
            client_secret=secrets.token_hex(32).upper())
        self._seed_records(creds)
        for k in keys:
            self.store.set_meta(k, getattr(creds, k))
        return creds

    def _seed_records(self, creds: Credentials) -> None:
        now = "2026-01-01T00:00:00.000Z"
        audit = {"IsDeleted": 0, "CreatedDate": now, "CreatedById": creds.user_id,
                 "LastModifiedDate": now, "LastModifiedById": creds.user_id,
                 "SystemModstamp": now}
        org = self.store.catalog.get("Organization")
        user = self.store.catalog.get("User")
        with self.store.transaction() as conn:
            if org is not None:
                self._insert(conn, org, {
                    **audit, "Id": creds.org_id, "Name": "sfbulk_nb Local Org",
                    "InstanceName": "LOCAL", "IsSandbox": 0,
                    "OrganizationType": "Developer Edition", "DefaultLocaleSidKey": "en_US",
                    "TimeZoneSidKey": "GMT", "LanguageLocaleKey": "en_US"})
            if user is not None:
                self._insert(conn, user, {
                    **audit, "Id": creds.user_id, "Username": creds.username,
                    "LastName": "Analyst", "FirstName": "Local", "Name": "Local Analyst",
                    "Email": "analyst@sfbulk-nb.local", "Alias": "analyst", "IsActive": 1,
                    "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US",
                    "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US",
                    "UserType": "Standard"})

    def _seed_standard_pricebook(self) -> None:
        """Every org has its standard price book from the start (Salesforce creates it
        with the org: Pricebook2 "Standard Price Book", IsStandard true); PricebookEntry
        rows of other price books need a standard price in it first. Also seeded into org
        files made before Pricebook2 shipped. Active here (UNCONFIRMED: whether it starts
        active in every edition is not recorded)."""
        book = self.store.catalog.get("Pricebook2")
        if book is None or self.store.query(
                f"SELECT 1 FROM {table_name(book)} WHERE IsStandard = 1 LIMIT 1"):
            return
        now = "2026-01-01T00:00:00.000Z"
        user_id = self.credentials.user_id
        with self.store.transaction() as conn:
            self._insert(conn, book, {
                "Id": self.store.allocate_ids(book.key_prefix, 1)[0], "IsDeleted": 0,
                "CreatedDate": now, "CreatedById": user_id, "LastModifiedDate": now,
                "LastModifiedById": user_id, "SystemModstamp": now,
                "Name": "Standard Price Book", "IsActive": 1, "IsArchived": 0,
                "IsStandard": 1})

    def _insert(self, conn, obj, record) -> None:
        names = [n for n in self.store.column_names(obj) if n in record]
        conn.execute(f"INSERT INTO {table_name(obj)} ({','.join(names)}) "
                     f"VALUES ({','.join('?' * len(names))})", [record[n] for n in names])

    # -- tokens -----------------------------------------------------------------------

    def issue_token(self, refresh_token: str | None = None) -> tuple[str, float]:
        """A fresh access token; like Salesforce's, it starts with the 15-char org id."""
        now = self.clock()
        token = f"{self.credentials.org_id[:15]}!AQ{secrets.token_urlsafe(48)}"
        self.store.add_token(token, self.credentials.user_id, now, now + TOKEN_LIFETIME_S,
                             refresh_token)
        return token, now

    def issue_refresh_token(self) -> str:
        """A refresh token for the user and the connected app, as the web-server flow
        grants one once the user has approved the app."""
        token = "5Aep861" + secrets.token_urlsafe(60)
        self.store.add_refresh_token(token, self.credentials.user_id, self.clock())
        return token

    def revoke(self, token: str) -> None:
        if not (token and self.store.revoke_token(token)):
            raise ApiError(400, "invalid_token", "invalid token")

    def register_jwt_key(self, public_key_pem: str | bytes) -> None:
        """Trust this RSA public key (PEM) to sign JWT bearer assertions."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        if not isinstance(serialization.load_pem_public_key(pem), rsa.RSAPublicKey):
            raise ValueError("the JWT bearer flow signs with RS256: give an RSA public key")
        self.store.set_meta("jwt_public_key", pem.decode())

    def user_for(self, authorization: str | None) -> str:
        """The user id behind a `Bearer` header, or the 401 Salesforce gives."""
        token = ""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() in ("bearer", "oauth"):
                token = value.strip()
        user = self.store.token_user(token, self.clock()) if token else None
        if user is None:
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid",
                           {"WWW-Authenticate": "Token"})
        return user

    def grant(self, form: dict[str, str], basic_auth: tuple[str, str] | None,
              own_url: str) -> tuple[str, float]:
        """Check an OAuth token request (see the module docstring) and issue its access
        token. `own_url` is the org's URL as the client called it (a valid JWT audience)."""
        creds = self.credentials
        client_id = form.get("client_id") or (basic_auth[0] if basic_auth else "")
        client_secret = form.get("client_secret") or (basic_auth[1] if basic_auth else "")
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_BEARER:
            self._check_assertion(form.get("assertion", ""), own_url)
            return self.issue_token()
        if grant_type not in ("password", "client_credentials", "refresh_token"):
            raise ApiError(400, "unsupported_grant_type", "grant type not supported")
        if not _same(client_id, creds.client_id):
            raise ApiError(400, "invalid_client_id", "client identifier invalid")
        # The refresh-token flow sends the secret only when the app requires it.
        if (client_secret or grant_type != "refresh_token") and not _same(
                client_secret, creds.client_secret):
            raise ApiError(400, "invalid_client", "invalid client credentials")
        if grant_type == "refresh_token":
            refresh_token = form.get("refresh_token", "")
            if not (refresh_token and self.store.refresh_token_user(refresh_token)):
                raise ApiError(400, "invalid_grant", "expired access/refresh token")
            return self.issue_token(refresh_token)
        if grant_type == "password" and not (
                _same(form.get("username", ""), creds.username)
                and _same(form.get("password", ""), creds.password)):
            raise ApiError(400, "invalid_grant", "authentication failure")
        return self.issue_token()

    def _check_assertion(self, assertion: str, own_url: str) -> None:
        """Salesforce's checks of a JWT bearer assertion, with its error descriptions."""
        try:
            import jwt
        except ImportError:
            raise ApiError(400, "unsupported_grant_type", "the local org needs PyJWT and "
                           "cryptography for the JWT bearer flow: pip install "
                           "'sfbulk_nb[jwt]'") from None
        key = self.store.get_meta("jwt_public_key")
        claims = None
        if key is not None:  # else no certificate on the connected app: nothing verifies
            try:
                claims = jwt.decode(assertion, key, algorithms=["RS256"],
                                    audience=[*JWT_AUDIENCES, own_url],
                                    # exp is checked below, on the org's clock
                                    options={"require": ["iss", "sub", "aud", "exp"],
                                             "verify_exp": False})
            except jwt.InvalidAudienceError:
                raise ApiError(400, "invalid_grant", "audience is invalid") from None
            except jwt.PyJWTError:
                pass
        if claims is None or not isinstance(claims["exp"], (int, float)):
            raise ApiError(400, "invalid_grant", "invalid assertion")
        if claims["exp"] <= self.clock():
            raise ApiError(400, "invalid_grant", "expired authorization code")
        if not _same(str(claims["iss"]), self.credentials.client_id):
            raise ApiError(400, "invalid_client_id", "client identifier invalid")
        if not _same(str(claims["sub"]), self.credentials.username):
            raise ApiError(400, "invalid_grant", "user hasn't approved this consumer")

    def signature(self, issued_at: str) -> str:
        """Base64 HMAC-SHA256 of id + issued_at keyed with the client secret."""
        mac = hmac.new(self.credentials.client_secret.encode(),
                       (self.identity_path() + issued_at).encode(), "sha256")
        return base64.b64encode(mac.digest()).decode()

    def identity_path(self) -> str:
        return f"/id/{self.credentials.org_id}/{self.credentials.user_id}"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
