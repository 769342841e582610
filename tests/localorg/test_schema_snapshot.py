"""Cloning an org's shape: sfb.snapshot_schema writes a schema folder, a local org starts
from it (LocalOrg(schema=...), connect("local", schema=...), import_schema, the CLI), and
both orgs then describe the same way; what the local org does not act on is kept and listed,
what it cannot take is refused whole and named."""
from __future__ import annotations

import copy
import json
import time
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import cli, errors
from sfbulk_nb import org as orgs
from sfbulk_nb.localorg import LocalOrg
from sfbulk_nb.localorg.catalog import SchemaError

SHIPPED = resources.files("sfbulk_nb.localorg").joinpath("schema")


def shipped(name: str) -> dict:
    return json.loads(SHIPPED.joinpath(f"{name}.json").read_text(encoding="utf-8"))


def _field(name: str, type_: str, **props) -> dict:
    template = next(f for f in shipped("Account")["fields"] if f["name"] == "customExtIdField__c")
    f = copy.deepcopy(template)
    f.update({"name": name, "label": name.removesuffix("__c").replace("_", " "), "type": type_,
              "externalId": False, "idLookup": False, "length": 0, "custom": True})
    f.update(props)
    return f


def _values(*values: str, inactive: tuple[str, ...] = ()) -> list[dict]:
    return [{"active": v not in inactive, "defaultValue": False, "label": v, "validFor": None,
             "value": v} for v in values + inactive]


def invoice_describe() -> dict:
    """A custom object with what a real org's describe has beyond the shipped objects: a
    restricted picklist, a dependent one, a formula, a compound location, encrypted text,
    an auto-number and a second record type."""
    account = shipped("Account")
    urls = {k: v.replace("/Account", "/Invoice__c") for k, v in account["urls"].items()}
    system = [copy.deepcopy(f) for f in account["fields"]
              if f["name"] in ("Id", "IsDeleted", "CreatedDate", "CreatedById",
                               "LastModifiedDate", "LastModifiedById", "SystemModstamp")]
    return {
        **{k: v for k, v in account.items() if k not in ("fields", "childRelationships")},
        "name": "Invoice__c", "label": "Invoice", "labelPlural": "Invoices", "custom": True,
        "keyPrefix": "a05", "urls": urls, "childRelationships": [],
        "recordTypeInfos": [
            {**account["recordTypeInfos"][0]},
            {"active": True, "available": True, "defaultRecordTypeMapping": False,
             "developerName": "Service", "master": False, "name": "Service",
             "recordTypeId": "0125g000000AbCdAAK", "urls": {}}],
        "fields": system + [
            _field("Name", "string", length=80, nillable=False, idLookup=True, custom=False,
                   nameField=True),
            _field("Invoice_Number__c", "string", length=20, externalId=True, idLookup=True,
                   unique=True),
            _field("Status__c", "picklist", length=255, restrictedPicklist=True,
                   picklistValues=_values("Draft", "Sent", "Paid", inactive=("Void",))),
            _field("Region__c", "picklist", length=255, dependentPicklist=True,
                   controllerName="Status__c", picklistValues=_values("North", "South")),
            _field("Amount__c", "currency", precision=16, scale=2, soapType="xsd:double"),
            _field("Account__c", "reference", length=18, referenceTo=["Account"],
                   relationshipName="Account__r", soapType="tns:ID"),
            _field("Total_With_Tax__c", "currency", calculated=True, createable=False,
                   updateable=False, calculatedFormula="Amount__c * 1.2",
                   soapType="xsd:double"),
            _field("Site__c", "location", createable=False, updateable=False,
                   soapType="urn:location"),
            _field("Site__Latitude__s", "double", compoundFieldName="Site__c", scale=15,
                   precision=18, soapType="xsd:double"),
            _field("Secret__c", "encryptedstring", length=50, mask="X", maskType="all"),
            _field("Seq__c", "string", length=30, autoNumber=True, createable=False,
                   updateable=False, defaultedOnCreate=True),
        ],
    }


def describes_over_http(client: sfb.Org, objects) -> dict[str, dict]:
    return {name: client.get_json(f"sobjects/{name}/describe") for name in objects}


@pytest.fixture
def source(tmp_path):
    with LocalOrg(tmp_path / "source.sqlite3") as org:
        org.add_object(invoice_describe())
        yield org, sfb.connect(org)


def test_a_snapshot_starts_an_org_that_describes_the_same_way(source, tmp_path):
    org, client = source
    snap = sfb.snapshot_schema(client, None, tmp_path / "shape")
    assert "Invoice__c" in snap.objects and "Account" in snap.objects  # custom + shipped
    assert json.loads((tmp_path / "shape" / "Invoice__c.json").read_text()) == invoice_describe()
    manifest = json.loads((tmp_path / "shape" / "_snapshot.json").read_text())
    assert manifest["objects"] == list(snap.objects) and manifest["apiVersion"] == "66.0"
    with LocalOrg(tmp_path / "clone.sqlite3", schema=snap.path) as clone:
        other = sfb.connect(clone)
        assert describes_over_http(other, snap.objects) == describes_over_http(client,
                                                                               snap.objects)
        listed = {o["name"]: o for o in other.get_json("sobjects")["sobjects"]}
        original = {o["name"]: o for o in client.get_json("sobjects")["sobjects"]}
        assert listed == original
        # What the clone keeps but does not act on is said, object by object.
        notes = "\n".join(clone.schema_import.notes["Invoice__c"])
        for said in ("Total_With_Tax__c: a formula field", "Site__c: a compound location",
                     "Region__c: its values' dependency on Status__c",
                     "Secret__c: encrypted text", "Seq__c: an auto-number",
                     "1 record type described"):
            assert said in notes
        # Account's addresses are compound fields: described, not stored as such.
        assert clone.schema_import.notes["Account"]
        assert all("compound" in n for n in clone.schema_import.notes["Account"])


def test_an_object_only_in_the_snapshot_takes_loads_and_queries(source, tmp_path):
    _, client = source
    snap = sfb.snapshot_schema(client, ["Invoice__c"], tmp_path / "shape")
    assert snap.objects == ("Invoice__c",)
    with LocalOrg(tmp_path / "clone.sqlite3", schema=snap.path) as clone:
        other = sfb.connect(clone)
        fast = dict(org=other, progress=False, sleep=lambda s: time.sleep(min(s, 0.01)))
        assert "Account" in {o["name"] for o in other.get_json("sobjects")["sobjects"]}
        sfb.insert_df(pd.DataFrame({"Name": ["Acme"], "customExtIdField__c": ["A-1"]}),
                      "Account", **fast)
        invoices = pd.DataFrame({
            "Invoice_Number__c": ["INV-1", "INV-2", "INV-3"], "Name": ["one", "two", "three"],
            "Status__c": ["Draft", "Paid", "Void"], "Amount__c": [10.5, 20, 30],
            "Account__r.customExtIdField__c": ["A-1", "A-1", "A-1"]})
        res = sfb.upsert_df(invoices, "Invoice__c", "Invoice_Number__c", on_invalid="send",
                            **fast)
        assert list(res.frame["sf_status"]) == ["created", "created", "failed"]
        assert res.frame["sf_error_code"].iloc[2] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        rows = sfb.query_df("SELECT Invoice_Number__c, Amount__c, Account__r.Name, "
                            "Total_With_Tax__c FROM Invoice__c ORDER BY Invoice_Number__c",
                            other, progress=False, sleep=fast["sleep"])
        assert list(rows["Invoice_Number__c"]) == ["INV-1", "INV-2"]
        assert list(rows["Amount__c"]) == [10.5, 20]
        assert list(rows["Account__r.Name"]) == ["Acme", "Acme"]
        assert rows["Total_With_Tax__c"].isna().all()  # a formula: never computed here
    # The objects stay with the org file: a restart without schema= still has them.
    with LocalOrg(tmp_path / "clone.sqlite3") as again:
        assert again.catalog.get("Invoice__c") is not None


def test_the_shipped_describes_load_as_a_schema(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    names = []
    for entry in SHIPPED.iterdir():
        if entry.name.endswith(".json"):
            (folder / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
            names.append(entry.name.removesuffix(".json"))
    with LocalOrg(tmp_path / "o.sqlite3", schema=folder) as org:
        assert sorted(org.schema_import.objects) == sorted(names)
        client = sfb.connect(org)
        for name, describe in describes_over_http(client, names).items():
            assert describe == shipped(name), name


def test_import_schema_from_another_org_and_connect_local_with_a_schema(source, tmp_path,
                                                                        monkeypatch):
    _, client = source
    with LocalOrg(tmp_path / "target.sqlite3") as target:
        imported = target.import_schema(client, ["Invoice__c", "Contact"])
        assert imported.objects == ["Invoice__c", "Contact"]
        assert "Invoice__c: kept in its describe but not enforced here:" in str(imported)
        assert target.catalog.get("Invoice__c").key_prefix == "a05"
    sfb.snapshot_schema(client, "Invoice__c", tmp_path / "shape")
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "default.sqlite3"))
    monkeypatch.setattr(orgs, "_local_orgs", {})
    monkeypatch.setattr(orgs, "_default", None)
    try:
        local = sfb.connect("local", name="shaped", schema=tmp_path / "shape")
        assert local.describe("Invoice__c")["keyPrefix"] == "a05"
        with pytest.raises(sfb.ConfigError, match="is not a folder"):
            sfb.connect("local", name="shaped", schema=tmp_path / "nowhere")
        with pytest.raises(sfb.ConfigError, match="schema="):
            sfb.connect(instance_url="https://x.my.salesforce.com", access_token="t",
                        schema=tmp_path / "shape")
    finally:
        for started in orgs._local_orgs.values():
            started.stop()


def test_what_cannot_be_loaded_is_refused_whole_and_named(tmp_path):
    folder = tmp_path / "shape"
    folder.mkdir()
    (folder / "Invoice__c.json").write_text(json.dumps(invoice_describe()))
    shareless = {**invoice_describe(), "name": "InvoiceShare", "keyPrefix": None}
    (folder / "InvoiceShare.json").write_text(json.dumps(shareless))
    with LocalOrg(tmp_path / "o.sqlite3") as org:
        with pytest.raises(SchemaError, match="InvoiceShare: keyPrefix is None"):
            org.load_schema(folder)
        assert org.catalog.get("Invoice__c") is None  # all or nothing
        (folder / "InvoiceShare.json").write_text(json.dumps(
            {**invoice_describe(), "name": "Clash__c", "keyPrefix": "001"}))
        with pytest.raises(SchemaError, match="key prefix '001' is already used by Account"):
            org.load_schema(folder)
        (folder / "InvoiceShare.json").write_text(json.dumps(
            {**invoice_describe(), "name": "../Escape__c", "keyPrefix": "a06"}))
        with pytest.raises(SchemaError, match="'../Escape__c' is not an API name"):
            org.load_schema(folder)  # it would be written to <db>.objects/../Escape__c.json
        (folder / "InvoiceShare.json").write_text("{not json")
        with pytest.raises(SchemaError, match="InvoiceShare.json is not JSON"):
            org.load_schema(folder)
        (tmp_path / "empty").mkdir()
        with pytest.raises(SchemaError, match="has no describe JSON files"):
            org.load_schema(tmp_path / "empty")
        assert org.catalog.get("Invoice__c") is None


def test_snapshot_refuses_unknown_objects_before_writing(source, tmp_path):
    _, client = source
    with pytest.raises(errors.InputError, match="has no object 'Invoice_c'"):
        sfb.snapshot_schema(client, ["Account", "Invoice_c"], tmp_path / "shape")
    assert not (tmp_path / "shape").exists()
    with pytest.raises(errors.InputError, match="not an object's API name"):
        sfb.snapshot_schema(client, ["../jobs"], tmp_path / "shape")
    (tmp_path / "file").write_text("")
    with pytest.raises(errors.InputError, match="is a file"):
        sfb.snapshot_schema(client, ["Account"], tmp_path / "file")


def test_cli_import_schema_into_a_named_org(source, tmp_path, monkeypatch, capsys):
    org, _ = source
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "default.sqlite3"))
    monkeypatch.setattr(orgs, "_local_orgs", {None: org})  # --org local: the source org
    monkeypatch.setattr(orgs, "_default", None)
    code = cli.main(["localorg", "import-schema", "--org", "local", "--objects",
                     "Invoice__c,Account", "--name", "rehearsal"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 objects: Invoice__c, Account" in out and "Total_With_Tax__c" in out
    with LocalOrg(name="rehearsal") as rehearsal:
        assert rehearsal.catalog.get("Invoice__c") is not None
    assert cli.main(["localorg", "import-schema", "--org", "local", "--objects", "Nope__c",
                     "--name", "rehearsal"]) == 2
    assert "has no object 'Nope__c'" in capsys.readouterr().err
    assert cli.main(["localorg", "import-schema", "--org", "local"]) == 2
    assert "--org local is the default local org" in capsys.readouterr().err


def test_describe_urls_follow_the_version_asked_for(source, tmp_path):
    _, client = source
    shape = tmp_path / "shape"
    sfb.snapshot_schema(client, ["Invoice__c"], shape)
    saved = json.loads((shape / "Invoice__c.json").read_text())
    text = json.dumps(saved).replace("/services/data/v66.0/", "/services/data/v62.0/")
    (shape / "Invoice__c.json").write_text(text)  # as if taken from an org at 62.0
    with LocalOrg(tmp_path / "clone.sqlite3", schema=shape) as clone:
        describe = sfb.connect(clone, api_version="60.0").describe("Invoice__c")
        assert describe["urls"]["describe"] == "/services/data/v60.0/sobjects/Invoice__c/describe"
        assert Path(shape / "Invoice__c.json").read_text() == text  # the file is not touched
