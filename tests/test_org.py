"""connect() in every form against the local org's OAuth endpoints, token renewal after a
401, close() and `with`, a repr without I/O, and secrets kept out of every error text,
verbose traceback and log record."""
from __future__ import annotations

import json
import logging
import os
import stat
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from IPython.core.ultratb import VerboseTB

import sfbulk_nb as sfb
from sfbulk_nb import errors, org as orgs
from sfbulk_nb.localorg import LocalOrg


def plain_verbose_tb() -> VerboseTB:
    """IPython's verbose traceback (what a notebook shows), without colours: `theme_name`
    since IPython 9, `color_scheme` before."""
    try:
        return VerboseTB(theme_name="nocolor")
    except TypeError:
        return VerboseTB(color_scheme="NoColor")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """No SF_* variables from the machine, and the default org restored after each test."""
    for name in list(os.environ):
        if name.startswith("SF_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(orgs, "_default", None)


def new_key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    return new_key_pair()


@pytest.fixture
def jwt_key(org, key_pair) -> bytes:
    """The private key of a key pair whose public half the org trusts."""
    org.register_jwt_key(key_pair[1])
    return key_pair[0]


def write_sf_stub(bin_dir, local: LocalOrg, alias: str) -> None:
    """An `sf` executable that answers `sf org display --target-org ALIAS --json` as the
    real CLI does for an org it holds a refresh token for: it gets a live access token
    with that refresh token, from the org's token endpoint."""
    bin_dir.mkdir(exist_ok=True)
    conf = {"alias": alias, "instance_url": local.instance_url, "username": local.username,
            "client_id": local.client_id, "refresh_token": local.issue_refresh_token()}
    sf = bin_dir / "sf"
    sf.write_text(f"""#!{sys.executable}
import json, sys, urllib.parse, urllib.request
conf = {json.dumps(conf)}
args = sys.argv[1:]
alias = args[args.index("--target-org") + 1]
if args[:2] != ["org", "display"] or alias != conf["alias"]:
    print(json.dumps({{"status": 1, "name": "NamedOrgNotFoundError",
                      "message": f"No authorization information found for {{alias}}."}}))
    sys.exit(1)
form = urllib.parse.urlencode({{"grant_type": "refresh_token", "client_id": conf["client_id"],
                               "refresh_token": conf["refresh_token"]}}).encode()
with urllib.request.urlopen(conf["instance_url"] + "/services/oauth2/token", form) as r:
    token = json.load(r)
print(json.dumps({{"status": 0, "result": {{
    "id": token["id"].rsplit("/", 2)[1], "apiVersion": "66.0",
    "accessToken": token["access_token"], "instanceUrl": token["instance_url"],
    "username": conf["username"], "clientId": "PlatformCLI", "connectedStatus": "Connected",
    "alias": alias}}}}))
""")
    sf.chmod(sf.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def sf_on_path(tmp_path, monkeypatch):
    """Put a stub `sf` for `local` under ALIAS on PATH."""
    def install(local: LocalOrg, alias: str = "my-org") -> None:
        write_sf_stub(tmp_path / "bin", local, alias)
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return install


def works(client: sfb.Org) -> bool:
    return client.request("GET", "jobs/ingest").status_code == 200


# -- every way of connecting ----------------------------------------------------------------

@pytest.fixture
def own_local_orgs(tmp_path, monkeypatch):
    """connect("local") starts its orgs in tmp_path, as if in a new process; they are
    stopped after the test."""
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "local.sqlite3"))
    monkeypatch.delenv("SFBULK_NB_PACE", raising=False)
    monkeypatch.setattr(orgs, "_local_orgs", {})
    yield orgs._local_orgs
    for started in orgs._local_orgs.values():
        started.stop()


def test_connect_local_starts_the_local_org_once_and_reuses_it(tmp_path, own_local_orgs):
    first = sfb.connect("local")
    assert works(first) and first.kind == "local" and first.label == "local org"
    assert first.local_org.path == tmp_path / "local.sqlite3"
    again = sfb.connect("local")
    assert again.local_org is first.local_org and sfb.default_org() is again


def accounts(client: sfb.Org) -> list[str]:
    records = client.get_json("query", params={"q": "SELECT Id FROM Account"})["records"]
    return sorted(r["Id"] for r in records)


def test_named_local_orgs_live_beside_the_default_one_and_fresh_empties_them(
        tmp_path, own_local_orgs, monkeypatch):
    monkeypatch.setenv("SFBULK_NB_PACE", "5000")  # the pace applies to named orgs too
    quick = sfb.connect("local", name="quickstart")
    assert works(quick) and quick.label == "local org 'quickstart'"
    assert quick.local_org.path == tmp_path / "local-quickstart.sqlite3"
    assert quick.local_org.name == "quickstart" and quick.local_org.engine.pace == 5000
    default = sfb.connect("local")
    assert default.local_org is not quick.local_org and sfb.default_org() is default
    # Reused in this process; its records are its own.
    assert sfb.connect("local", name="quickstart").local_org is quick.local_org
    frame = pd.DataFrame({"Name": ["One", "Two"]})
    created = sfb.insert_df(frame, "Account", org=quick, progress=False).frame["sf_id"]
    assert accounts(quick) == sorted(created) and accounts(default) == []
    password = quick.local_org.password
    # fresh=True empties it: no records, new credentials; the Org connected before gets a
    # new token by itself, and the same load gives the same ids again.
    fresh = sfb.connect("local", name="quickstart", fresh=True)
    assert fresh.local_org is quick.local_org and accounts(fresh) == []
    assert fresh.local_org.password != password
    again = sfb.insert_df(frame, "Account", org=quick, progress=False).frame["sf_id"]
    assert list(again) == list(created)
    # The next process finds the records on disk, unless it asks for a fresh org.
    for started in own_local_orgs.values():
        started.stop()
    own_local_orgs.clear()
    assert len(accounts(sfb.connect("local", name="quickstart"))) == 2
    own_local_orgs.pop("quickstart").stop()
    assert accounts(sfb.connect("local", name="quickstart", fresh=True)) == []
    assert len(accounts(sfb.connect("local"))) == 0


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "Quickstart", "two words", ".hidden",
                                  "x" * 65, "-dash", "a.b", 7])
def test_a_local_org_name_must_be_a_safe_file_name(name, tmp_path, own_local_orgs):
    with pytest.raises(errors.ConfigError, match=r"cannot name a local org: use 1 to 64 "
                       r"lower-case letters, digits, '-' and '_'.*e\.g\. 'quickstart'"):
        sfb.connect("local", name=name)
    with pytest.raises(ValueError, match="cannot name a local org"):
        LocalOrg(name=name)
    assert list(tmp_path.iterdir()) == [] and own_local_orgs == {}


def test_name_and_fresh_are_for_the_local_org_only(org, tmp_path, own_local_orgs):
    with pytest.raises(errors.ConfigError, match=r"connect\('local', name=\.\.\., fresh=True\)"):
        sfb.connect(instance_url=org.instance_url, access_token=org.access_token, name="x")
    with pytest.raises(errors.ConfigError, match=r"connect\('local', name="):
        sfb.connect(fresh=True)
    with pytest.raises(errors.ConfigError, match=r"fresh must be True or False, not 'yes'"):
        sfb.connect("local", name="x", fresh="yes")
    with pytest.raises(ValueError, match="a name or a path, not both"):
        LocalOrg(tmp_path / "o.sqlite3", name="x")
    assert list(tmp_path.iterdir()) == [] and own_local_orgs == {}


def test_connect_a_local_org_object(org):
    client = sfb.connect(org)
    assert works(client) and client.local_org is org and sfb.default_org() is client


def test_connect_with_instance_url_and_access_token(org):
    client = sfb.connect(instance_url=org.instance_url, access_token=org.access_token)
    assert works(client) and client.auth == "access token"
    with pytest.raises(errors.ConfigError, match="both instance_url and access_token"):
        sfb.connect(instance_url=org.instance_url)


def test_connect_with_username_and_password(org):
    client = sfb.connect(username=org.username, password=org.password, client_id=org.client_id,
                         client_secret=org.client_secret, login_url=org.instance_url)
    assert works(client) and client.instance_url == org.instance_url
    with pytest.raises(errors.ConfigError, match="both username and password"):
        sfb.connect(username=org.username, client_id=org.client_id,
                    client_secret=org.client_secret, login_url=org.instance_url)


def test_connect_with_client_credentials(org):
    client = sfb.connect(client_id=org.client_id, client_secret=org.client_secret,
                         login_url=org.instance_url)
    assert works(client) and client.auth == "client credentials"
    with pytest.raises(errors.ConfigError, match="needs login_url: your My Domain"):
        sfb.connect(client_id=org.client_id, client_secret=org.client_secret)
    with pytest.raises(errors.AuthError, match="invalid_client_id: client identifier invalid"):
        sfb.connect(client_id="3MVGnope", client_secret=org.client_secret,
                    login_url=org.instance_url)


def test_connect_with_a_jwt_from_key_text_or_key_file(org, jwt_key, tmp_path):
    client = sfb.connect(username=org.username, client_id=org.client_id, private_key=jwt_key,
                         login_url=org.instance_url)
    assert works(client) and client.auth == "JWT bearer"
    key_file = tmp_path / "server.key"
    key_file.write_bytes(jwt_key)
    assert works(sfb.connect(username=org.username, client_id=org.client_id,
                             private_key=key_file, login_url=org.instance_url))


def test_jwt_refusals_and_bad_keys(org, jwt_key, tmp_path):
    def jwt_connect(**changes):
        args = dict(username=org.username, client_id=org.client_id, private_key=jwt_key,
                    login_url=org.instance_url)
        return sfb.connect(**{**args, **changes})

    with pytest.raises(errors.AuthError, match="invalid_grant: invalid assertion"):
        jwt_connect(private_key=new_key_pair()[0])  # a key the org does not trust
    with pytest.raises(errors.AuthError, match="invalid_grant: user hasn't approved"):
        jwt_connect(username="someone@else.example")
    with pytest.raises(errors.AuthError, match="invalid_client_id"):
        jwt_connect(client_id="3MVGnope")
    with pytest.raises(errors.ConfigError, match="unencrypted PEM RSA private key"):
        jwt_connect(private_key="-----BEGIN PRIVATE KEY-----\nnot a key\n")
    with pytest.raises(errors.ConfigError, match="cannot read the private_key file"):
        jwt_connect(private_key=tmp_path / "missing.key")
    with pytest.raises(errors.ConfigError, match="needs username and client_id"):
        jwt_connect(username=None)


def test_jwt_audience_is_the_login_host_salesforce_expects():
    audience = orgs._jwt_audience
    assert audience("https://login.salesforce.com") == "https://login.salesforce.com"
    assert audience("https://test.salesforce.com") == "https://test.salesforce.com"
    assert audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert audience("https://acme--uat.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert audience("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_connect_with_a_refresh_token(org):
    token = org.issue_refresh_token()
    client = sfb.connect(refresh_token=token, client_id=org.client_id,
                         login_url=org.instance_url)
    assert works(client) and client.auth == "refresh token"
    # A client secret is optional; when sent it must be right.
    assert works(sfb.connect(refresh_token=token, client_id=org.client_id,
                             client_secret=org.client_secret, login_url=org.instance_url))
    with pytest.raises(errors.AuthError, match="invalid_client: invalid client credentials"):
        sfb.connect(refresh_token=token, client_id=org.client_id, client_secret="wrong",
                    login_url=org.instance_url)
    with pytest.raises(errors.AuthError, match="invalid_grant: expired access/refresh token"):
        sfb.connect(refresh_token="5Aep861nope", client_id=org.client_id,
                    login_url=org.instance_url)
    with pytest.raises(errors.ConfigError, match="needs the client_id"):
        sfb.connect(refresh_token=token, login_url=org.instance_url)


def test_connect_from_an_access_token_in_the_environment(org, monkeypatch, capsys):
    monkeypatch.setenv("SF_INSTANCE_URL", org.instance_url)
    monkeypatch.setenv("SF_ACCESS_TOKEN", org.access_token)
    assert works(sfb.connect())
    assert "(SF_INSTANCE_URL and SF_ACCESS_TOKEN)" in capsys.readouterr().err


def test_connect_from_oauth_settings_in_the_environment(org, monkeypatch, capsys):
    monkeypatch.setenv("SF_CLIENT_ID", org.client_id)
    monkeypatch.setenv("SF_CLIENT_SECRET", org.client_secret)
    monkeypatch.setenv("SF_LOGIN_URL", org.instance_url)
    assert sfb.connect(quiet=True).auth == "client credentials"
    monkeypatch.setenv("SF_USERNAME", org.username)
    monkeypatch.setenv("SF_PASSWORD", org.password)
    client = sfb.connect()
    assert works(client) and client.auth == "password login"
    assert "(SF_CLIENT_ID and SF_CLIENT_SECRET)" in capsys.readouterr().err


def test_connect_without_settings_uses_the_local_org_and_says_so(org, monkeypatch, capsys):
    monkeypatch.setitem(orgs._local_orgs, None, org)
    assert sfb.connect().local_org is org
    assert "no SF_* environment variables" in capsys.readouterr().err


def test_connect_with_an_sf_cli_alias(org, sf_on_path):
    sf_on_path(org, "my-org")
    client = sfb.connect("my-org")
    assert works(client) and client.label == "my-org" and client.api_version == "66.0"
    assert works(sfb.connect(sf_alias="my-org"))
    with pytest.raises(errors.ConfigError, match="No authorization information found for nope"):
        sfb.connect("nope")


def test_connect_with_an_alias_needs_sf_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(errors.ConfigError, match="sf CLI is not on PATH"):
        sfb.connect("my-org")


# -- renewal after a 401 --------------------------------------------------------------------

RENEWABLE = ["local org", "password login", "client credentials", "JWT bearer",
             "refresh token", "sf alias"]


def connect_as(kind: str, local: LocalOrg, sf_on_path) -> sfb.Org:
    login = dict(client_id=local.client_id, login_url=local.instance_url)
    if kind == "local org":
        return sfb.connect(local)
    if kind == "password login":
        return sfb.connect(username=local.username, password=local.password,
                           client_secret=local.client_secret, **login)
    if kind == "client credentials":
        return sfb.connect(client_secret=local.client_secret, **login)
    if kind == "JWT bearer":
        private, public = new_key_pair()
        local.register_jwt_key(public)
        return sfb.connect(username=local.username, private_key=private, **login)
    if kind == "refresh token":
        return sfb.connect(refresh_token=local.issue_refresh_token(), **login)
    sf_on_path(local, "paced")
    return sfb.connect("paced")


@pytest.mark.parametrize("kind", RENEWABLE)
def test_a_pending_run_carries_on_with_a_new_session_after_expiry(kind, tmp_path, sf_on_path):
    with LocalOrg(tmp_path / "paced.sqlite3", pace=3000) as local:
        client = connect_as(kind, local, sf_on_path)
        assert client.auth.startswith(kind)
        df = pd.DataFrame({"Name": [f"R{i}" for i in range(1500)]})
        res = sfb.insert_df(df, "Account", org=client, wait=False, progress=False)
        assert not res.done  # so it polls again after the expiry, and meets a 401
        local.expire_tokens()
        assert res.wait().ok and (res.frame["sf_status"] == "created").all()


def test_a_pasted_token_cannot_be_renewed_until_set_token(org):
    client = sfb.connect(instance_url=org.instance_url, access_token=org.access_token)
    org.expire_tokens()
    with pytest.raises(errors.AuthError, match=r"INVALID_SESSION_ID.*org\.set_token\(\.\.\.\)"):
        works(client)
    client.set_token(org.access_token)  # the local org issues a new one
    assert works(client)
    with pytest.raises(errors.ConfigError, match="needs an access token"):
        client.set_token("")


def test_parallel_calls_meeting_an_expiry_renew_once(org):
    logins = []

    def renew():
        logins.append(1)
        return org.access_token

    client = sfb.Org(org.instance_url, org.access_token, renew=renew, api_version="66.0")
    org.expire_tokens()
    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(lambda _: works(client), range(8)))
    assert len(logins) == 1


def test_revoking_the_refresh_token_ends_the_session_and_its_renewal(org):
    token = org.issue_refresh_token()
    client = sfb.connect(refresh_token=token, client_id=org.client_id,
                         login_url=org.instance_url)
    assert works(client)
    r = requests.post(f"{org.instance_url}/services/oauth2/revoke", data={"token": token},
                      timeout=10)
    assert r.status_code == 200
    with pytest.raises(errors.AuthError, match="invalid_grant: expired access/refresh token"):
        works(client)  # its access token went with the refresh token; renewal is refused


# -- close, with, repr, plain http ----------------------------------------------------------

def test_with_block_closes_the_org_and_later_calls_fail_clearly(org):
    with sfb.connect(org) as client:
        assert works(client) and not client.closed
        pools = client.session.get_adapter(org.instance_url).poolmanager.pools
        assert len(pools) == 1
    assert client.closed and len(pools) == 0  # its connections are gone
    with pytest.raises(errors.ConfigError, match="was closed .*connect\\(\\) again"):
        works(client)
    with pytest.raises(errors.ConfigError, match="was closed"):
        works(sfb.default_org())  # the default org stays closed: no silent switch
    assert works(sfb.connect(org))  # the local org itself keeps running


def test_close_leaves_a_session_the_caller_passed_open(org):
    session = requests.Session()
    client = sfb.connect(instance_url=org.instance_url, access_token=org.access_token,
                         session=session)
    client.close()
    assert session.get(f"{org.instance_url}/services/data", timeout=10).status_code == 200


def test_repr_shows_what_the_org_holds_without_calling_it(org):
    client = sfb.Org(org.instance_url, org.access_token, kind="local")
    text = repr(client)
    assert client.api_calls == 0 and "API version not fetched" in text
    assert org.access_token not in text
    assert client.api_version == "66.0"
    assert repr(client) == f"<Org LOCAL {org.instance_url} v66.0, access token>"
    # An org nobody can reach: repr still answers at once.
    far = sfb.Org("https://unreachable.invalid", "00Dx!token")
    assert repr(far) == ("<Org PRODUCTION https://unreachable.invalid API version not "
                         "fetched, access token>") and far.api_calls == 0
    far.close()
    assert repr(far).endswith(", closed>")


def test_plain_http_is_refused_except_to_this_machine_or_when_insecure(org):
    with pytest.raises(errors.ConfigError, match="plain http"):
        sfb.connect(instance_url="http://acme.example.com", access_token="00Dx!token")
    with pytest.raises(errors.ConfigError, match="login_url 'http://login.example.com' is "
                                                 "plain http"):
        sfb.connect(username=org.username, password=org.password, client_id=org.client_id,
                    client_secret=org.client_secret, login_url="http://login.example.com")
    client = sfb.connect(instance_url="http://acme.example.com", access_token="00Dx!token",
                         insecure=True)
    assert client.instance_url == "http://acme.example.com" and client.api_calls == 0
    for loopback in ("http://localhost:1", "http://127.0.0.5:1", "http://[::1]:1"):
        assert sfb.Org(loopback, "00Dx!token").kind == "local"
    with pytest.raises(errors.ConfigError, match="must be an https:// URL"):
        sfb.Org("acme.my.salesforce.com", "00Dx!token")


# -- secrets --------------------------------------------------------------------------------

PACKAGE = os.path.dirname(sfb.__file__)


def assert_hides(exc: BaseException, secrets: list[str]) -> None:
    """Neither the error, its chain, a traceback with every frame's locals (Python's and
    IPython's %xmode Verbose) nor any requests object in the chain shows a secret. The
    traceback is cut to sfbulk_nb's frames: the caller's own variables are the caller's."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(PACKAGE):
        tb = tb.tb_next
    assert tb is not None
    exc = exc.with_traceback(tb)
    chain, seen = [], exc
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for e in chain:
        assert not isinstance(e, requests.RequestException)
        assert not any(isinstance(v, (requests.PreparedRequest, requests.Response))
                       for v in vars(e).values())
    texts = [str(exc), repr(exc),
             "".join(traceback.TracebackException.from_exception(exc, capture_locals=True)
                     .format()),
             plain_verbose_tb().text(type(exc), exc, exc.__traceback__)]
    for secret in secrets:
        for text in texts:
            assert secret not in text


def caught(call, error=errors.SFBulkError) -> BaseException:
    with pytest.raises(error) as info:
        call()
    return info.value


def test_secrets_stay_out_of_errors_tracebacks_and_logs(org, jwt_key, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    wrong_password = "Wrong-" + org.password
    refresh_token = org.issue_refresh_token()
    key_body = jwt_key.decode().splitlines()[5]  # a line from the middle of the PEM
    secrets = [org.password, wrong_password, org.client_secret, refresh_token, key_body]
    login = dict(client_id=org.client_id, login_url=org.instance_url)

    # Login refused; no answer at all; refused before sending (plain http).
    exc = caught(lambda: sfb.connect(username=org.username, password=wrong_password,
                                     client_secret=org.client_secret, **login),
                 errors.AuthError)
    assert "invalid_grant: authentication failure" in str(exc)
    assert_hides(exc, secrets)
    assert_hides(caught(lambda: sfb.connect(
        username=org.username, password=org.password, client_id=org.client_id,
        client_secret=org.client_secret, login_url="http://127.0.0.1:1"),
        errors.TransportError), secrets)
    assert_hides(caught(lambda: sfb.connect(
        username=org.username, password=org.password, client_id=org.client_id,
        client_secret=org.client_secret, login_url="http://login.example.com"),
        errors.ConfigError), secrets)
    # The same, from the environment.
    monkeypatch.setenv("SF_CLIENT_ID", org.client_id)
    monkeypatch.setenv("SF_CLIENT_SECRET", org.client_secret)
    monkeypatch.setenv("SF_USERNAME", org.username)
    monkeypatch.setenv("SF_PASSWORD", wrong_password)
    monkeypatch.setenv("SF_LOGIN_URL", org.instance_url)
    assert_hides(caught(lambda: sfb.connect(quiet=True), errors.AuthError), secrets)
    # JWT: an untrusted key, and a key that is not one.
    assert_hides(caught(lambda: sfb.connect(username=org.username, private_key=new_key_pair()[0],
                                            **login), errors.AuthError), secrets)
    assert_hides(caught(lambda: sfb.connect(username=org.username,
                                            private_key=f"not a key {key_body}", **login),
                        errors.ConfigError), secrets)

    # A 401 on a token that cannot be renewed, and a dropped connection mid-session.
    pasted = org.access_token
    client = sfb.connect(instance_url=org.instance_url, access_token=pasted)
    assert pasted not in repr(client) and pasted not in repr(vars(client))
    org.expire_tokens()
    assert_hides(caught(lambda: works(client), errors.AuthError), secrets + [pasted])
    client.set_token(org.access_token)
    org.faults.add(drop=True, path="/limits$", times=None)
    assert_hides(caught(lambda: client.request("GET", "limits"), errors.TransportError),
                 secrets + [org.access_token])
    org.faults.clear()

    # A refresh token revoked: renewal refused.
    renewing = sfb.connect(refresh_token=refresh_token, **login)
    assert works(renewing)
    requests.post(f"{org.instance_url}/services/oauth2/revoke", data={"token": refresh_token},
                  timeout=10)
    org.expire_tokens()
    assert_hides(caught(lambda: works(renewing), errors.AuthError), secrets)

    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert logged  # urllib3 logged the calls: the check below looked at something
    for secret in secrets + [pasted, org.access_token]:
        assert secret not in logged


def test_secret_hides_its_value():
    secret = orgs.Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == "hunter2"
    assert orgs.Secret.of(secret) is secret and orgs.Secret.of("") is None
