"""OAuth and identity over HTTP: the token endpoint, revoke, the identity URL and userinfo.

The grants, tokens and credentials are identity.py's; this module only shapes the answers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .errors import not_found
from .responses import json_response

if TYPE_CHECKING:
    from .app import LocalOrgApp

RULES = [
    Rule("/services/oauth2/token", endpoint="token", methods=["POST"]),
    Rule("/services/oauth2/userinfo", endpoint="userinfo", methods=["GET", "POST"]),
    Rule("/services/oauth2/revoke", endpoint="revoke", methods=["GET", "POST"]),
    Rule("/id/<org_key>/<user_key>", endpoint="identity", methods=["GET", "POST"]),
]
PUBLIC = {"token", "revoke"}  # answered without a bearer token


class AuthResource:
    # The org's identity is read from the app on every call: reset() gives it a new one.
    def __init__(self, app: "LocalOrgApp"):
        self.app = app

    def on_token(self, request: Request, **_) -> Response:
        identity = self.app.identity
        basic = None
        if request.authorization and request.authorization.type == "basic":
            basic = (request.authorization.username or "", request.authorization.password or "")
        token, issued = identity.grant(request.form.to_dict(), basic,
                                       request.host_url.rstrip("/"))
        issued_at = str(int(issued * 1000))
        return json_response({
            "access_token": token,
            "instance_url": request.host_url.rstrip("/"),
            "id": request.host_url.rstrip("/") + identity.identity_path(),
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": identity.signature(issued_at),
        })

    def on_revoke(self, request: Request, **_) -> Response:
        # POST form `token=`, or a GET with ?token= (Salesforce accepts both).
        self.app.identity.revoke(request.values.get("token", ""))
        return Response(status=200)

    def _user_json(self) -> dict[str, Any]:
        creds = self.app.identity.credentials
        store = self.app.store
        user = store.get_record(store.catalog.get("User"), creds.user_id) or {}
        return {"user_id": creds.user_id, "organization_id": creds.org_id,
                "username": creds.username, "email": user.get("Email"),
                "first_name": user.get("FirstName"), "last_name": user.get("LastName"),
                "display_name": user.get("Name"), "language": "en_US", "locale": "en_US",
                "timezone": "GMT", "active": True, "user_type": "STANDARD"}

    def _urls(self, request: Request) -> dict[str, str]:
        base = request.host_url.rstrip("/") + "/services/data/v{version}/"
        return {"rest": base, "sobjects": base + "sobjects/", "query": base + "query/",
                "search": base + "search/", "recent": base + "recent/",
                "profile": request.host_url + self.app.identity.credentials.user_id}

    def on_identity(self, request: Request, org_key: str, user_key: str, **_) -> Response:
        identity = self.app.identity
        creds = identity.credentials
        if (org_key, user_key) != (creds.org_id, creds.user_id):
            raise not_found()
        info = self._user_json()
        return json_response({
            "id": request.host_url.rstrip("/") + identity.identity_path(),
            "asserted_user": True, "user_id": creds.user_id, "organization_id": creds.org_id,
            "username": creds.username, "nick_name": "analyst", "display_name":
            info["display_name"], "email": info["email"], "email_verified": True,
            "first_name": info["first_name"], "last_name": info["last_name"],
            "timezone": "GMT", "active": True, "user_type": "STANDARD", "language": "en_US",
            "locale": "en_US", "utcOffset": 0, "is_lightning_login_user": False,
            "urls": self._urls(request)})

    def on_userinfo(self, request: Request, **_) -> Response:
        identity = self.app.identity
        creds = identity.credentials
        info = self._user_json()
        return json_response({
            "sub": request.host_url.rstrip("/") + identity.identity_path(),
            "user_id": creds.user_id, "organization_id": creds.org_id,
            "preferred_username": creds.username, "nickname": "analyst",
            "name": info["display_name"], "email": info["email"], "email_verified": True,
            "given_name": info["first_name"], "family_name": info["last_name"],
            "zoneinfo": "GMT", "locale": "en_US", "language": "en_US", "active": True,
            "user_type": "STANDARD", "utcOffset": 0, "is_app_installed": True,
            "urls": self._urls(request)})
