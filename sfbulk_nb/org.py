"""Orgs and connections: `connect()` works out credentials; `Org` owns the HTTP session.

    org = connect("local")                                  # the built-in local org
    org = connect(instance_url=..., access_token=...)       # an existing session
    org = connect(username=..., password=..., client_id=..., client_secret=...)
    org = connect(client_id=..., client_secret=..., login_url="https://MyDomain.my.salesforce.com")
    org = connect(sf_alias="my-sandbox")                    # an org the sf CLI has authorised
    org = connect()          # SF_* environment variables, else the local org (it says which)
    org = connect(LocalOrg(...).start())                    # a local org you started

The most recent connect() becomes the default org that every function uses when given
`org=None`. One `requests.Session` per Org, with timeouts on every call and urllib3's Retry
for connection failures and 5xx answers to idempotent calls.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import errors

LATEST_API_VERSION = "66.0"
DEFAULT_TIMEOUT = (10.0, 300.0)  # (connect, read) seconds
_ENV_HINT = ("set SF_INSTANCE_URL and SF_ACCESS_TOKEN, or SF_USERNAME, SF_PASSWORD, "
             "SF_CLIENT_ID and SF_CLIENT_SECRET (SF_LOGIN_URL optional)")


def default_retry() -> Retry:
    # POST (create job) and PUT (upload) are retried only when the connection failed before
    # anything was sent: a repeated PUT would be refused ("only one upload per job").
    return Retry(total=5, connect=5, read=2, status=4, backoff_factor=0.5,
                 status_forcelist=(429, 500, 502, 503, 504),
                 allowed_methods=frozenset({"GET", "HEAD", "DELETE", "PATCH"}),
                 raise_on_status=False, respect_retry_after_header=True)


@dataclass(frozen=True)
class ApiUsage:
    """The org's API calls so far today, from the last `Sforce-Limit-Info` header."""

    used: int
    limit: int

    def __str__(self) -> str:
        return f"{self.used:,} of {self.limit:,} API calls used today"


class Org:
    """One Salesforce org (or the local org) and the session that talks to it."""

    def __init__(self, instance_url: str, access_token: str, *, api_version: str | None = None,
                 session: requests.Session | None = None, timeout=DEFAULT_TIMEOUT,
                 retry: Retry | None = None, renew: Callable[[], str] | None = None,
                 kind: str | None = None, label: str | None = None, local_org: Any = None):
        self.instance_url = instance_url.rstrip("/")
        self._token = access_token
        self._renew = renew
        self.timeout = timeout
        self.session = session or requests.Session()
        if session is None:
            adapter = HTTPAdapter(max_retries=retry or default_retry(), pool_maxsize=32)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self._api_version = api_version
        # The LocalOrg behind a local connection (its fault injection, reset, ...), else None.
        self.local_org = local_org
        self.kind = kind or _guess_kind(self.instance_url)
        self.label = label or urlparse(self.instance_url).netloc
        self._lock = threading.Lock()
        self.api_calls = 0
        self.api_usage: ApiUsage | None = None
        self._describes: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"<Org {self.kind.upper()} {self.instance_url} v{self.api_version}>"

    @property
    def api_version(self) -> str:
        if self._api_version is None:
            versions = self.request("GET", "/services/data").json()
            self._api_version = max((v["version"] for v in versions), key=float)
        return self._api_version

    @property
    def base_path(self) -> str:
        return f"/services/data/v{self.api_version}"

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,),
                **kwargs: Any) -> requests.Response:
        """One API call. `path` is absolute (`/services/...`) or relative to the versioned
        base (`jobs/ingest`). Raises the matching SFBulkError unless the status is in
        `expect`. A 401 renews the token once when the org knows how."""
        if not path.startswith("/"):
            path = f"{self.base_path}/{path}"
        headers = dict(kwargs.pop("headers", None) or {})
        for attempt in (0, 1):
            headers["Authorization"] = f"Bearer {self._token}"
            try:
                response = self.session.request(method, self.instance_url + path,
                                                headers=headers, timeout=self.timeout, **kwargs)
            except requests.RequestException as e:
                with self._lock:
                    self.api_calls += 1
                raise errors.TransportError(
                    f"No answer from {self.instance_url} to {method} {path}: "
                    f"{type(e).__name__}") from None
            self._count(response)
            if response.status_code == 401 and attempt == 0 and self._renew is not None:
                self._token = self._renew()
                continue
            if response.status_code in expect:
                return response
            raise errors.from_response(response, method=method, path=path)
        raise AssertionError("unreachable")

    def _count(self, response: requests.Response) -> None:
        retries = getattr(getattr(response, "raw", None), "retries", None)
        extra = len(retries.history) if retries is not None else 0
        usage = _parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        with self._lock:
            self.api_calls += 1 + extra
            if usage is not None:
                self.api_usage = usage

    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe JSON (cached per Org)."""
        key = sobject.lower()
        if key not in self._describes:
            self._describes[key] = self.request("GET", f"sobjects/{sobject}/describe").json()
        return self._describes[key]


def _parse_limit_info(header: str | None) -> ApiUsage | None:
    if not header:
        return None
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "api-usage" and "/" in value:
            used, limit = value.split("/", 1)
            try:
                return ApiUsage(int(used), int(limit))
            except ValueError:
                return None
    return None


def _guess_kind(instance_url: str) -> str:
    host = urlparse(instance_url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return "local"
    if "sandbox" in host or "--" in host or host.startswith(("test.", "cs")):
        return "sandbox"
    return "production"


# -- connect -------------------------------------------------------------------------------

_default: Org | None = None
_local_org = None  # the LocalOrg connect("local") started in this process


def default_org() -> Org:
    """The org of the last connect(); connects (environment, else local) when there is none."""
    return _default if _default is not None else connect()


def set_default(org: Org) -> Org:
    global _default
    _default = org
    return org


def connect(target: Any = None, *, instance_url: str | None = None,
            access_token: str | None = None, username: str | None = None,
            password: str | None = None, client_id: str | None = None,
            client_secret: str | None = None, login_url: str | None = None,
            sf_alias: str | None = None, api_version: str | None = None,
            session: requests.Session | None = None, quiet: bool = False) -> Org:
    """Connect to an org and make it the default. See the module docstring for the forms."""
    if target == "local":
        org = _connect_local(api_version)
    elif target is not None and not isinstance(target, str):
        org = _org_for_local(target, api_version)  # a LocalOrg the caller started
    elif target is not None:
        org = _connect_sf_cli(target, api_version, session)
    elif sf_alias is not None:
        org = _connect_sf_cli(sf_alias, api_version, session)
    elif instance_url or access_token:
        if not (instance_url and access_token):
            raise errors.ConfigError("give both instance_url and access_token")
        org = Org(instance_url, access_token, api_version=api_version, session=session)
    elif client_id or client_secret or username or password:
        org = _connect_oauth(username, password, client_id, client_secret, login_url,
                             api_version, session)
    else:
        org = _connect_from_environment(api_version, session, quiet)
    return set_default(org)


def _connect_local(api_version: str | None) -> Org:
    global _local_org
    from .localorg import LocalOrg, default_path

    if _local_org is None:
        # SFBULK_NB_PACE (records/second) slows processing so a demo shows jobs moving.
        pace = float(os.environ.get("SFBULK_NB_PACE") or 0) or None
        _local_org = LocalOrg(path=default_path(), pace=pace).start()
    return _org_for_local(_local_org, api_version)


def _org_for_local(local, api_version: str | None) -> Org:
    return Org(local.instance_url, local.access_token, renew=lambda: local.access_token,
               api_version=api_version or LATEST_API_VERSION, kind="local",
               label="local org", local_org=local)


def _connect_oauth(username, password, client_id, client_secret, login_url, api_version,
                   session) -> Org:
    if not (client_id and client_secret):
        raise errors.ConfigError("OAuth login needs client_id and client_secret (from the "
                                 "connected app)")
    if bool(username) != bool(password):
        raise errors.ConfigError("give both username and password, or neither (client "
                                 "credentials flow)")
    login_url = (login_url or "https://login.salesforce.com").rstrip("/")
    form = {"client_id": client_id, "client_secret": client_secret}
    if username:
        form.update(grant_type="password", username=username, password=password)
    else:
        form["grant_type"] = "client_credentials"
    http = session or requests.Session()

    def login() -> dict[str, Any]:
        try:
            response = http.post(f"{login_url}/services/oauth2/token", data=form,
                                 timeout=DEFAULT_TIMEOUT)
        except requests.RequestException as e:
            raise errors.TransportError(f"No answer from {login_url}: {type(e).__name__}") from None
        if response.status_code != 200:
            code, message = errors._error_fields(_json_or_none(response))
            raise errors.AuthError(f"Login to {login_url} refused: {code or response.status_code}"
                                   f"{': ' + message if message else ''}")
        return response.json()

    token = login()
    return Org(token["instance_url"], token["access_token"], api_version=api_version,
               session=session, renew=lambda: login()["access_token"])


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _connect_sf_cli(alias: str, api_version: str | None, session) -> Org:
    exe = shutil.which("sf")
    if exe is None:
        raise errors.ConfigError("the sf CLI is not on PATH; install @salesforce/cli or "
                                 "connect with instance_url and access_token")

    def display() -> dict[str, Any]:
        proc = subprocess.run([exe, "org", "display", "--target-org", alias, "--json"],
                              capture_output=True, text=True, timeout=120)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            data = {}
        if proc.returncode != 0 or "result" not in data:
            raise errors.ConfigError(f"sf could not display org {alias!r}: "
                                     f"{data.get('message') or proc.stderr.strip()[:300]}")
        return data["result"]

    result = display()
    return Org(result["instanceUrl"], result["accessToken"],
               api_version=api_version or result.get("apiVersion"), session=session,
               renew=lambda: display()["accessToken"], label=alias)


def _connect_from_environment(api_version, session, quiet: bool) -> Org:
    env = os.environ
    if env.get("SF_INSTANCE_URL") and env.get("SF_ACCESS_TOKEN"):
        org = Org(env["SF_INSTANCE_URL"], env["SF_ACCESS_TOKEN"], api_version=api_version,
                  session=session)
        how = "SF_INSTANCE_URL and SF_ACCESS_TOKEN"
    elif env.get("SF_CLIENT_ID") and env.get("SF_CLIENT_SECRET"):
        org = _connect_oauth(env.get("SF_USERNAME"), env.get("SF_PASSWORD"),
                             env["SF_CLIENT_ID"], env["SF_CLIENT_SECRET"],
                             env.get("SF_LOGIN_URL"), api_version, session)
        how = "SF_CLIENT_ID and SF_CLIENT_SECRET"
    else:
        org = _connect_local(api_version)
        how = f"no SF_* environment variables ({_ENV_HINT} for a real org)"
    if not quiet:
        print(f"sfbulk_nb: connected to the {org.kind} org at {org.instance_url} ({how})",
              file=sys.stderr)
    return org
