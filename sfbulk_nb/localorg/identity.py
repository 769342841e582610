"""Who the local org is: its Organization and User records, credentials and tokens.

The first start of an org file seeds one Organization, one User (the API user) and one
connected app (client id and secret). Credentials are generated per org file and kept in
it, so two orgs never share a password or a token.
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

    def _insert(self, conn, obj, record) -> None:
        names = [n for n in self.store.column_names(obj) if n in record]
        conn.execute(f"INSERT INTO {table_name(obj)} ({','.join(names)}) "
                     f"VALUES ({','.join('?' * len(names))})", [record[n] for n in names])

    # -- tokens -----------------------------------------------------------------------

    def issue_token(self) -> tuple[str, float]:
        """A fresh access token; like Salesforce's, it starts with the 15-char org id."""
        now = self.clock()
        token = f"{self.credentials.org_id[:15]}!AQ{secrets.token_urlsafe(48)}"
        self.store.add_token(token, self.credentials.user_id, now, now + TOKEN_LIFETIME_S)
        return token, now

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

    def grant(self, form: dict[str, str], basic_auth: tuple[str, str] | None) -> str:
        """Check an OAuth token request (password or client_credentials grant)."""
        creds = self.credentials
        client_id = form.get("client_id") or (basic_auth[0] if basic_auth else "")
        client_secret = form.get("client_secret") or (basic_auth[1] if basic_auth else "")
        grant_type = form.get("grant_type", "")
        if grant_type not in ("password", "client_credentials"):
            raise ApiError(400, "unsupported_grant_type", "grant type not supported")
        if not _same(client_id, creds.client_id):
            raise ApiError(400, "invalid_client_id", "client identifier invalid")
        if not _same(client_secret, creds.client_secret):
            raise ApiError(400, "invalid_client", "invalid client credentials")
        if grant_type == "password" and not (
                _same(form.get("username", ""), creds.username)
                and _same(form.get("password", ""), creds.password)):
            raise ApiError(400, "invalid_grant", "authentication failure")
        return grant_type

    def signature(self, issued_at: str) -> str:
        """Base64 HMAC-SHA256 of id + issued_at keyed with the client secret."""
        mac = hmac.new(self.credentials.client_secret.encode(),
                       (self.identity_path() + issued_at).encode(), "sha256")
        return base64.b64encode(mac.digest()).decode()

    def identity_path(self) -> str:
        return f"/id/{self.credentials.org_id}/{self.credentials.user_id}"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
