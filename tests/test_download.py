"""download.body: a CSV answer read whole and unpacked (ISA-L where installed), or refused
as cut off. Real HTTP throughout: the local org, and a small werkzeug server for the bodies
an org would not send on purpose (a gzip stream that stops early, a damaged one)."""
from __future__ import annotations

import gzip
import threading
import zlib

import pandas as pd
import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import sfbulk_nb as sfb
from sfbulk_nb import download

CSV = ('"Id","Name"\n"001","Comma, ""quoted"""\n"002","line\nbreak\r"\n"003","ünïcødé ✓"\n'
       * 2000).encode()


def _bodies() -> dict[str, tuple[bytes, str]]:
    packed = gzip.compress(CSV, compresslevel=1)
    deflated = zlib.compress(CSV)
    damaged = bytearray(packed)
    damaged[-6] ^= 0xFF  # the CRC-32 in the trailer: every byte unpacks, the check fails
    return {
        "/gzip": (packed, "gzip"),
        "/deflate": (deflated, "deflate"),
        "/plain": (CSV, ""),
        "/stops-early": (packed[: len(packed) // 2], "gzip"),  # its length, told honestly
        "/damaged": (bytes(damaged), "gzip"),
    }


@pytest.fixture(scope="module")
def server():
    bodies = _bodies()

    @Request.application
    def app(request: Request) -> Response:
        data, encoding = bodies[request.path]
        headers = {"Content-Encoding": encoding} if encoding else {}
        return Response(data, content_type="text/csv", headers=headers)

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def client(org):
    return sfb.connect(org)


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/plain"])
def test_every_encoding_gives_the_same_bytes(server, path):
    response = requests.get(server + path, stream=True, timeout=10)
    assert download.body(response) == CSV


@pytest.mark.parametrize("path, says", [("/stops-early", "stops before its end"),
                                        ("/damaged", "damaged")])
def test_a_gzip_stream_that_does_not_end_well_is_cut_off(server, path, says):
    response = requests.get(server + path, stream=True, timeout=10)
    with pytest.raises(download.CutOff, match=says):
        download.body(response)


def test_isal_does_the_unpacking_where_it_is_installed():
    pytest.importorskip("isal")
    assert download._inflate.__name__ == "isal.isal_zlib"


def test_query_pages_read_the_same_packed_or_not(client, org):
    rows = pd.DataFrame({"customExtIdField__c": [f"K{i:05d}" for i in range(3000)],
                         "Name": [f"Name, {i} \"q\" é\n" for i in range(3000)]})
    assert sfb.upsert_df(rows, "Account", "customExtIdField__c", progress=False).ok
    soql = "SELECT customExtIdField__c, Name FROM Account ORDER BY customExtIdField__c"
    packed = sfb.query_df(soql, progress=False)
    client.session.headers["Accept-Encoding"] = "identity"
    try:
        plain = sfb.query_df(soql, progress=False)
    finally:
        client.session.headers["Accept-Encoding"] = "gzip, deflate"
    pd.testing.assert_frame_equal(packed, plain)
    assert packed["Name"].tolist() == rows["Name"].tolist()


def test_a_cut_off_query_page_is_read_again(client, org):
    rows = pd.DataFrame({"customExtIdField__c": [f"K{i:05d}" for i in range(500)],
                         "Name": [f"N{i}" for i in range(500)]})
    assert sfb.upsert_df(rows, "Account", "customExtIdField__c", progress=False).ok
    org.faults.add(truncate=40, method="GET", path="/results$", times=2)
    got = sfb.query_df("SELECT Name FROM Account", progress=False)
    assert len(got) == 500
    assert org.faults.describe() == []  # both cuts happened, and were read again
