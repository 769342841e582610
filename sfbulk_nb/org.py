"""Orgs and connections: `connect()` works out credentials; `Org` owns the HTTP session.

    org = connect("local")                                  # the built-in local org
    org = connect("local", name="quickstart", fresh=True)   # a local org of its own, emptied
    org = connect(instance_url=..., access_token=...)       # an existing session
    org = connect(username=..., password=..., client_id=..., client_secret=...)
    org = connect(client_id=..., client_secret=..., login_url="https://MyDomain.my.salesforce.com")
    org = connect(username=..., client_id=..., private_key=Path("server.key"))   # JWT bearer
    org = connect(refresh_token=..., client_id=..., login_url=...)  # client_secret if required
    org = connect(sf_alias="my-sandbox")                    # an org the sf CLI has authorised
    org = connect()          # SF_* environment variables, else the local org (it says which)
    org = connect(LocalOrg(...).start())                    # a local org you started
    with connect(...) as org: ...                           # closed at the end of the block

The most recent connect() becomes the default org that every function uses when given
`org=None`. One `requests.Session` per Org, with timeouts on every call and urllib3's Retry
for connection failures and 5xx answers to idempotent calls.

A 401 renews the access token once, the way it was obtained: the same OAuth grant again
(password, client credentials, JWT, refresh token), `sf org display` again for an alias, a
fresh token from a local org. A token given as such cannot be renewed: the AuthError says
to call `org.set_token(new_token)`.

`org.close()` (or the end of a `with` block) closes the session the Org opened (not one you
passed in, nor a LocalOrg behind it); a closed Org, the default one included, refuses every
further call with ConfigError until you connect() again.

Secrets (tokens, passwords, client secrets, private keys) live in `Secret` wrappers from the
moment they arrive, so reprs, messages, logs and verbose tracebacks (which print every
frame's local variables) never show them, and no error keeps requests' exceptions, whose
PreparedRequest carries the Authorization header. Plain http is refused for anything but
this machine unless `insecure=True`.
"""
from __future__ import annotations

from pathlib import Path

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from . import errors
from .retrying import Retrying, read_json

LATEST_API_VERSION = "66.0"
DEFAULT_TIMEOUT = (10.0, 300.0)  # (connect, read) seconds
LOGIN_URL = "https://login.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ENV_HINT = ("set SF_INSTANCE_URL and SF_ACCESS_TOKEN, or SF_USERNAME, SF_PASSWORD, "
             "SF_CLIENT_ID and SF_CLIENT_SECRET (SF_LOGIN_URL optional)")
_JWT_EXTRA = "the JWT bearer flow needs PyJWT and cryptography: pip install 'sfbulk_nb[jwt]'"


def default_retry() -> Retry:
    # POST (create job) and PUT (upload) are retried only when the connection failed before
    # anything was sent: a repeated PUT would be refused ("only one upload per job").
    return Retry(total=5, connect=5, read=2, status=4, backoff_factor=0.5,
                 status_forcelist=(429, 500, 502, 503, 504),
                 allowed_methods=frozenset({"GET", "HEAD", "DELETE", "PATCH"}),
                 raise_on_status=False, respect_retry_after_header=True)


class Secret:
    """A credential whose repr and str hide it; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: Any):
        self._value = value

    @classmethod
    def of(cls, value: Any) -> "Secret | None":
        """`value` wrapped (once); None when it is missing or empty."""
        if not value:
            return None
        return value if isinstance(value, Secret) else cls(value)

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


@dataclass(frozen=True)
class ApiUsage:
    """The org's API calls so far today, from the last `Sforce-Limit-Info` header."""

    used: int
    limit: int

    def __str__(self) -> str:
        return f"{self.used:,} of {self.limit:,} API calls used today"


class Org:
    """One Salesforce org (or the local org) and the session that talks to it.

    `renew` returns a new access token after a 401; `auth` says in the repr how the token
    was obtained. See the module docstring for close(), `with` and `insecure`.
    """

    def __init__(self, instance_url: str, access_token: str | Secret, *,
                 api_version: str | None = None, session: requests.Session | None = None,
                 timeout=DEFAULT_TIMEOUT, retry: Retry | None = None,
                 renew: Callable[[], str | Secret] | None = None, kind: str | None = None,
                 label: str | None = None, local_org: Any = None, auth: str | None = None,
                 insecure: bool = False):
        # Wrapped before anything can raise: a verbose traceback prints this frame's locals.
        access_token = Secret.of(access_token)
        if access_token is None:
            raise errors.ConfigError("Org needs an access token")
        self.instance_url = _checked_url(instance_url, "instance_url", insecure)
        self._token = access_token
        self._renew = renew
        self.auth = auth or ("renewable token" if renew is not None else "access token")
        self.timeout = timeout
        self._own_session = session is None
        self.session = session or _new_session(retry)
        self._closed = False
        self._api_version = api_version
        # The LocalOrg behind a local connection (its fault injection, reset, ...), else None.
        self.local_org = local_org
        self.kind = kind or _guess_kind(self.instance_url)
        self.label = label or urlparse(self.instance_url).netloc
        self._lock = threading.Lock()
        self._renew_lock = threading.Lock()
        self.api_calls = 0
        self.api_usage: ApiUsage | None = None
        self._describes: dict[str, dict] = {}
        self._key_prefixes: dict[str, str] | None = None

    @property
    def org_key(self) -> str:
        """What names this org across processes, for the run journal: a local org's file
        (its port changes with every start), else the instance URL."""
        if self.local_org is not None and getattr(self.local_org, "path", None) is not None:
            return f"local:{Path(self.local_org.path).resolve()}"
        return self.instance_url

    def __repr__(self) -> str:
        # Only what the Org holds: a repr must not call the org (api_version may).
        version = f"v{self._api_version}" if self._api_version else "API version not fetched"
        closed = ", closed" if self._closed else ""
        return f"<Org {self.kind.upper()} {self.instance_url} {version}, {self.auth}{closed}>"

    def __enter__(self) -> "Org":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session this Org opened; later calls raise ConfigError."""
        self._closed = True
        if self._own_session:
            self.session.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def set_token(self, access_token: str | Secret) -> None:
        """Use this access token from now on (e.g. a new one pasted after a 401)."""
        token = Secret.of(access_token)
        if token is None:
            raise errors.ConfigError("set_token needs an access token")
        self._token = token

    @property
    def api_version(self) -> str:
        if self._api_version is None:
            versions = self.get_json("/services/data")
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
        if self._closed:
            raise errors.ConfigError(f"The Org for {self.instance_url} was closed (close() or "
                                     "the end of its with block); connect() again to use it")
        if not path.startswith("/"):
            path = f"{self.base_path}/{path}"
        for attempt in (0, 1):
            token = self._token
            try:
                response = _send(self.session, method, self.instance_url + path,
                                 f"{self.instance_url} to {method} {path}",
                                 auth=_Bearer(token), timeout=self.timeout, **kwargs)
            except errors.TransportError:
                with self._lock:
                    self.api_calls += 1
                raise
            self._count(response)
            if response.status_code == 401 and attempt == 0 and self._renew is not None:
                self._renew_token(token)
                continue
            if response.status_code in expect:
                return response
            raise errors.from_response(response, method=method, path=path)
        raise AssertionError("unreachable")

    def _renew_token(self, refused: Secret) -> None:
        # Parallel jobs meet the expiry together: the first renews, the others reuse its token.
        with self._renew_lock:
            if self._token is refused:
                self._token = Secret.of(self._renew())

    def _count(self, response: requests.Response) -> None:
        retries = getattr(getattr(response, "raw", None), "retries", None)
        extra = len(retries.history) if retries is not None else 0
        usage = _parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        with self._lock:
            self.api_calls += 1 + extra
            if usage is not None:
                self.api_usage = usage

    def get_json(self, path: str, retry: Retrying | None = None, **kwargs: Any) -> Any:
        """GET and read JSON, retried (retrying.py) when no answer comes, the answer
        cannot be read, or Salesforce says 429 or 5xx: a read is safe to repeat."""
        return (retry or Retrying()).call(
            lambda n: read_json(self.request("GET", path, **kwargs), "GET", path))

    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe JSON (cached per Org)."""
        key = sobject.lower()
        if key not in self._describes:
            self._describes[key] = self.get_json(f"sobjects/{sobject}/describe")
        return self._describes[key]

    def key_prefixes(self) -> dict[str, str]:
        """Key prefix -> object name, for every object the org lists (describeGlobal,
        fetched once per Org): which object an id belongs to."""
        if self._key_prefixes is None:
            objects = self.get_json("sobjects").get("sobjects", [])
            self._key_prefixes = {o["keyPrefix"]: o["name"] for o in objects if o.get("keyPrefix")}
        return self._key_prefixes


class _Bearer(AuthBase):
    """Sets `Authorization: Bearer ...` as requests sends, so the header is never in a dict
    of ours (a verbose traceback would print it). Also keeps ~/.netrc from replacing it."""

    def __init__(self, token: Secret):
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token.reveal()}"
        return request


class _Form(dict):
    """An OAuth token request's form: its repr names the fields, never their values."""

    def __repr__(self) -> str:
        return f"<form {', '.join(self)}>"


def _new_session(retry: Retry | None = None) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry or default_retry(), pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _send(session: requests.Session, method: str, url: str, where: str,
          **kwargs: Any) -> requests.Response:
    """session.request. A failure is raised as TransportError after the except block, so
    neither its __context__ nor its traceback keeps requests' exception, whose
    PreparedRequest holds the Authorization header or the login form."""
    try:
        return session.request(method, url, **kwargs)
    except requests.RequestException as e:
        failure = type(e).__name__
    raise errors.TransportError(f"No answer from {where}: {failure}")


def _checked_url(url: str, what: str, insecure: bool) -> str:
    """`url` without a trailing slash. Plain http would carry the token (and at login the
    password and secrets) readable over the network: only to this machine, or if insecure."""
    parts = urlparse(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.ConfigError(f"{what} must be an https:// URL, not {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not insecure:
        raise errors.ConfigError(
            f"{what} {url!r} is plain http, which would send credentials unencrypted; use "
            "https://, or pass insecure=True for a test server on a network you trust")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


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
    if _is_loopback(host):
        return "local"
    if "sandbox" in host or "--" in host or host.startswith(("test.", "cs")):
        return "sandbox"
    return "production"


# -- connect -------------------------------------------------------------------------------

_default: Org | None = None
# The LocalOrgs connect("local") started in this process, by name (None: the default org).
_local_orgs: dict[str | None, Any] = {}


def default_org() -> Org:
    """The org of the last connect(), closed or not (a closed one says so when called: no
    silent switch to another org); connects (environment, else local) when there is none."""
    return _default if _default is not None else connect()


def org_or_default(org: Any) -> Org:
    """The org a call was given (org=), else the default one. Anything else (a name, a
    LocalOrg server) is an argument error that says how to get an Org."""
    if org is None:
        return default_org()
    if isinstance(org, Org):
        return org
    made = f"sfb.connect({org!r})" if isinstance(org, str) else "sfb.connect(...)"
    raise errors.InputError(f"org must be an Org, not a {type(org).__name__}: pass "
                            f"org={made}, or leave org out to use the default org")


def set_default(org: Org) -> Org:
    global _default
    _default = org
    return org


def connect(target: Any = None, *, instance_url: str | None = None,
            access_token: str | Secret | None = None, username: str | None = None,
            password: str | Secret | None = None, client_id: str | None = None,
            client_secret: str | Secret | None = None, login_url: str | None = None,
            private_key: str | bytes | os.PathLike | Secret | None = None,
            refresh_token: str | Secret | None = None, sf_alias: str | None = None,
            api_version: str | None = None, session: requests.Session | None = None,
            insecure: bool = False, quiet: bool = False, name: str | None = None,
            fresh: bool = False, limits: dict[str, int] | None = None,
            schema: str | os.PathLike | None = None) -> Org:
    """Connect to an org and make it the default. See the module docstring for the forms.

    private_key: the JWT bearer flow's unencrypted PEM RSA key (text, bytes or a file path).
    insecure: allow plain http to hosts other than this machine.
    name: with "local", a local org of that name (its own file beside the default org's,
        see localorg.default_path), started once per process like the default one.
    fresh: with "local", empty the org first (LocalOrg.reset: records, jobs, tokens and
        credentials), so a notebook gives the same counts every run.
    limits: with "local", daily allowances to rehearse running out of, e.g.
        {"DailyApiRequests": 200} (LocalOrg(limits=...); an org already started gets them).
    schema: with "local", a schema folder (sfb.snapshot_schema) whose objects the org takes
        on (LocalOrg.load_schema: kept with the org; objects not in the folder stay).
    """
    # Wrapped first: a verbose traceback of any error below prints this frame's locals.
    access_token, password, client_secret, private_key, refresh_token = map(
        Secret.of, (access_token, password, client_secret, private_key, refresh_token))
    common = dict(api_version=api_version, session=session, insecure=insecure)
    local_only = (name, limits, schema)
    if target != "local" and (fresh is not False or any(o is not None for o in local_only)):
        raise errors.ConfigError("name=, fresh=, limits= and schema= choose, empty and shape "
                                 "a local org: connect('local', name=..., fresh=True)")
    if target == "local":
        org = _connect_local(api_version, name, fresh, limits, schema)
    elif target is not None and not isinstance(target, str):
        org = _org_for_local(target, api_version)  # a LocalOrg the caller started
    elif target is not None or sf_alias is not None:
        org = _connect_sf_cli(target or sf_alias, **common)
    elif instance_url or access_token:
        if not (instance_url and access_token):
            raise errors.ConfigError("give both instance_url and access_token")
        org = Org(instance_url, access_token, **common)
    elif refresh_token:
        org = _connect_refresh_token(refresh_token, client_id, client_secret, login_url,
                                     **common)
    elif private_key:
        org = _connect_jwt(username, client_id, private_key, login_url, **common)
    elif client_id or client_secret or username or password:
        org = _connect_oauth(username, password, client_id, client_secret, login_url, **common)
    else:
        org = _connect_from_environment(quiet, **common)
    return set_default(org)


def _connect_local(api_version: str | None, name: str | None = None,
                   fresh: bool = False, limits: dict[str, int] | None = None,
                   schema: str | os.PathLike | None = None) -> Org:
    from .localorg import LocalOrg, default_path
    from .localorg.catalog import SchemaError
    from .localorg.limits import check_limits
    from .localorg.server import check_name

    if not isinstance(fresh, bool):
        raise errors.ConfigError(f"fresh must be True or False, not {fresh!r}")
    try:
        if name is not None:
            check_name(name)
        limits = check_limits(limits or {})
    except ValueError as e:
        raise errors.ConfigError(str(e)) from None
    local = _local_orgs.get(name)
    try:
        if local is None:
            # SFBULK_NB_PACE (records/second) slows processing so a demo shows jobs moving.
            pace = float(os.environ.get("SFBULK_NB_PACE") or 0) or None
            local = (LocalOrg(name=name, pace=pace, limits=limits) if name is not None
                     else LocalOrg(default_path(), pace=pace, limits=limits))
            if fresh:  # before start(): jobs a killed kernel left unfinished are not resumed
                local.reset()
            if schema is not None:
                local.load_schema(schema)
            _local_orgs[name] = local.start()
        else:
            local.set_limits(limits)
            if fresh:
                local.reset()
            if schema is not None:
                local.load_schema(schema)
    except SchemaError as e:
        raise errors.ConfigError(f"cannot load the schema into the local org: {e}") from None
    return _org_for_local(local, api_version)


def _org_for_local(local, api_version: str | None) -> Org:
    label = f"local org {local.name!r}" if local.name else "local org"
    return Org(local.instance_url, local.access_token, renew=lambda: local.access_token,
               api_version=api_version or LATEST_API_VERSION, kind="local",
               label=label, local_org=local, auth="local org")


def _login_org(login_url: str | None, auth: str, form: Callable[[], _Form], *,
               api_version: str | None, session: requests.Session | None,
               insecure: bool) -> Org:
    """Log in with one OAuth grant; after a 401 the Org logs in again with the same grant
    (`form` is built afresh each time: a JWT assertion expires)."""
    login_url = _checked_url(login_url or LOGIN_URL, "login_url", insecure)
    # The first login needs a session before the Org (and its own session) exists.
    with (nullcontext(session) if session is not None else requests.Session()) as http:
        instance_url, token = _token_request(http, login_url, form())
    org = Org(instance_url, token, api_version=api_version, session=session, auth=auth,
              insecure=insecure, renew=lambda: _token_request(org.session, login_url, form())[1])
    return org


def _token_request(session: requests.Session, login_url: str,
                   form: _Form) -> tuple[str, Secret]:
    """POST one grant to the token endpoint: (instance_url, access token). A refusal is
    mapped by errors.from_response, like every other answer."""
    url = login_url + TOKEN_PATH
    response = _send(session, "POST", url, login_url, data=form, timeout=DEFAULT_TIMEOUT)
    if response.status_code != 200:
        raise errors.from_response(response, method="POST", path=url)
    issued = _issued(_json_or_none(response))
    if issued is None:
        raise errors.AuthError(f"{url} answered 200 without an access_token and instance_url")
    return issued


def _issued(body: Any) -> tuple[str, Secret] | None:
    # Never raises, so no traceback can show `body` (it holds the access token).
    if isinstance(body, dict) and body.get("instance_url") and body.get("access_token"):
        return str(body["instance_url"]), Secret(str(body["access_token"]))
    return None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _connect_oauth(username: str | None, password: Secret | None, client_id: str | None,
                   client_secret: Secret | None, login_url: str | None, **common: Any) -> Org:
    if not (client_id and client_secret):
        raise errors.ConfigError("OAuth login needs client_id and client_secret (from the "
                                 "connected app)")
    if bool(username) != bool(password):
        raise errors.ConfigError("give both username and password, or neither (client "
                                 "credentials flow)")
    if username:
        return _login_org(login_url, "password login", lambda: _Form(
            grant_type="password", client_id=client_id, client_secret=client_secret.reveal(),
            username=username, password=password.reveal()), **common)
    if not login_url:
        # Salesforce runs this flow only on the org's own domain, never on login.salesforce.com.
        raise errors.ConfigError("the client credentials flow needs login_url: your My "
                                 "Domain, e.g. https://MyDomain.my.salesforce.com")
    return _login_org(login_url, "client credentials", lambda: _Form(
        grant_type="client_credentials", client_id=client_id,
        client_secret=client_secret.reveal()), **common)


def _connect_refresh_token(refresh_token: Secret, client_id: str | None,
                           client_secret: Secret | None, login_url: str | None,
                           **common: Any) -> Org:
    if not client_id:
        raise errors.ConfigError("the refresh-token flow needs the client_id of the connected "
                                 "app that issued the token")

    def form() -> _Form:
        fields = _Form(grant_type="refresh_token", refresh_token=refresh_token.reveal(),
                       client_id=client_id)
        if client_secret:  # only apps that require it get one
            fields["client_secret"] = client_secret.reveal()
        return fields

    return _login_org(login_url, "refresh token", form, **common)


def _connect_jwt(username: str | None, client_id: str | None, private_key: Secret,
                 login_url: str | None, **common: Any) -> Org:
    if not (username and client_id):
        raise errors.ConfigError("the JWT bearer flow needs username and client_id (the "
                                 "connected app's consumer key) besides private_key")
    try:
        import jwt
    except ImportError:
        raise errors.ConfigError(_JWT_EXTRA) from None
    key = _rsa_private_key(private_key)
    audience = _jwt_audience((login_url or LOGIN_URL).rstrip("/"))

    def form() -> _Form:
        # Three minutes, as simple-salesforce does: long enough for clock skew, no longer.
        claims = {"iss": client_id, "sub": username, "aud": audience,
                  "exp": int(time.time()) + 180}
        return _Form(grant_type=JWT_BEARER,
                     assertion=jwt.encode(claims, key, algorithm="RS256"))

    return _login_org(login_url, "JWT bearer", form, **common)


def _rsa_private_key(private_key: Secret) -> Any:
    """The loaded key (its repr shows nothing), read once rather than at every renewal."""
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:
        raise errors.ConfigError(_JWT_EXTRA) from None
    problem = None
    try:
        key = load_pem_private_key(_pem_bytes(private_key), password=None)
    except OSError as e:  # raised below, outside this block, with nothing of the key
        problem = f"cannot read the private_key file: {e.strerror}"
    except (ValueError, TypeError):  # not PEM, or encrypted
        key = None
    if problem is None and not isinstance(key, rsa.RSAPrivateKey):
        problem = ("private_key must be an unencrypted PEM RSA private key (the key of the "
                   "certificate on the connected app)")
    if problem is not None:
        raise errors.ConfigError(problem)
    return key


def _pem_bytes(private_key: Secret) -> bytes:
    value = private_key.reveal()
    if isinstance(value, os.PathLike):
        with open(value, "rb") as f:
            return f.read()
    return value.encode() if isinstance(value, str) else value


def _jwt_audience(login_url: str) -> str:
    """The JWT's aud. Salesforce wants its login host (test. for sandboxes) even when the
    token is asked of a My Domain; other hosts (an Experience Cloud site, a local org) are
    their own audience."""
    host = urlparse(login_url).hostname or ""
    if host.endswith(".my.salesforce.com"):
        return "https://test.salesforce.com" if ".sandbox." in host else LOGIN_URL
    return login_url


def _connect_sf_cli(alias: str, *, api_version: str | None,
                    session: requests.Session | None, insecure: bool) -> Org:
    exe = shutil.which("sf")
    if exe is None:
        raise errors.ConfigError("the sf CLI is not on PATH; install @salesforce/cli or "
                                 "connect with instance_url and access_token")
    instance_url, token, version = _sf_display(exe, alias)
    # On a 401, ask sf again: it refreshes an expired token with its stored refresh token.
    return Org(instance_url, token, api_version=api_version or version, session=session,
               insecure=insecure, renew=lambda: _sf_display(exe, alias)[1], label=alias,
               auth=f"sf alias {alias!r}")


def _sf_display(exe: str, alias: str) -> tuple[str, Secret, str | None]:
    found, problem = _sf_result(_run_sf(exe, alias))
    if found is None:
        raise errors.ConfigError(f"sf could not display org {alias!r}: {problem}")
    return found


def _run_sf(exe: str, alias: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([exe, "org", "display", "--target-org", alias, "--json"],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None


def _sf_result(proc: subprocess.CompletedProcess | None
               ) -> tuple[tuple[str, Secret, str | None] | None, str]:
    """(instance URL, token, API version) from `sf org display --json`, else (None, why).
    Never raises, so no traceback shows `proc`: its stdout holds the access token."""
    if proc is None:
        return None, "sf did not answer within 120 s"
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = None
    result = data.get("result") if isinstance(data, dict) else None
    if (proc.returncode == 0 and isinstance(result, dict) and result.get("instanceUrl")
            and result.get("accessToken")):
        return (result["instanceUrl"], Secret(result["accessToken"]),
                result.get("apiVersion")), ""
    message = data.get("message") if isinstance(data, dict) else None
    return None, message or proc.stderr.strip()[:300] or f"exit status {proc.returncode}"


def _connect_from_environment(quiet: bool, **common: Any) -> Org:
    if _env("SF_INSTANCE_URL") and _env_secret("SF_ACCESS_TOKEN"):
        org = Org(_env("SF_INSTANCE_URL"), _env_secret("SF_ACCESS_TOKEN"), **common)
        how = "SF_INSTANCE_URL and SF_ACCESS_TOKEN"
    elif _env("SF_CLIENT_ID") and _env_secret("SF_CLIENT_SECRET"):
        org = _connect_oauth(_env("SF_USERNAME"), _env_secret("SF_PASSWORD"), _env("SF_CLIENT_ID"),
                             _env_secret("SF_CLIENT_SECRET"), _env("SF_LOGIN_URL"), **common)
        how = "SF_CLIENT_ID and SF_CLIENT_SECRET"
    else:
        org = _connect_local(common["api_version"])
        how = f"no SF_* environment variables ({_ENV_HINT} for a real org)"
    if not quiet:
        print(f"sfbulk_nb: connected to the {org.kind} org at {org.instance_url} ({how})",
              file=sys.stderr)
    return org


# The environment is read only through these: a verbose traceback (IPython's shows the value
# of every name and attribute on the lines it prints) must never meet `os.environ` itself.
def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _env_secret(name: str) -> Secret | None:
    return Secret.of(os.environ.get(name))
