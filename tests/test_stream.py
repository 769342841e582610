"""Streamed loads (sfbulk_nb.stream): upsert_csv & co on files read in blocks, and
iterables of frames, against the local org."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import cli, errors, org as orgs
from sfbulk_nb.results import STATUS_COLUMNS

KEY = "customExtIdField__c"
QUIET = {"progress": False, "sleep": lambda seconds: None}
AWKWARD = ["plain", "a, comma", 'say "hi"', "two\nlines", "cr\rhere", "crlf\r\ninside",
           "ünïcødé ☃ 日本", "", "  spaced  ", '"quoted, all"']


@pytest.fixture
def client(org):
    return sfb.connect(org)


def quoted(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_csv(path, n: int, *, bad_line: int | None = None, blank_every: int = 0,
              eol: str = "\n", encoding: str = "utf-8", key_of=None) -> dict[str, int]:
    """Accounts K0.. with awkward descriptions; returns each key's starting file line."""
    key_of = key_of or (lambda i: f"K{i}")
    lines_of: dict[str, int] = {}
    out = [f"{KEY},Name,Description,NumberOfEmployees"]
    line = 2
    for i in range(n):
        if blank_every and i and i % blank_every == 0:
            out.append("")  # a blank line: skipped, but it counts
            line += 1
        desc = AWKWARD[i % len(AWKWARD)]
        employees = "many" if line == bad_line else ("" if i % 3 else str(i))
        out.append(f"{key_of(i)},Name {i},{quoted(desc)},{employees}")
        lines_of[key_of(i)] = line
        line += 1 + desc.count("\n") + desc.replace("\r\n", "\n").count("\r")
    path.write_bytes((eol.join(out) + eol).encode(encoding))
    return lines_of


def accounts(org) -> pd.DataFrame:
    return sfb.query_df(f"SELECT {KEY}, Name, Description FROM Account", org=sfb.connect(org),
                        progress=False)


def test_a_file_of_many_blocks_streams_into_jobs_and_its_results_name_the_lines(client, org,
                                                                                 tmp_path):
    path = tmp_path / "accounts.csv"
    lines_of = write_csv(path, 120, blank_every=17)
    res = sfb.upsert_csv(path, "Account", KEY, block_size=300, max_records=25, **QUIET)
    assert res.ok, res
    assert res.path == tmp_path / "accounts.results.csv"  # the default: beside the input
    assert res.counts["created"] == 120 and res.rows == 120
    assert len(res.jobs) == 5 and res.jobs["rows"].tolist() == [25] * 4 + [20]
    assert res.jobs["state"].eq("JobComplete").all()
    frame = res.frame()
    assert list(frame.columns) == ["line", KEY, *STATUS_COLUMNS]
    assert dict(zip(frame[KEY], frame["line"])) == lines_of
    assert frame["line"].is_monotonic_increasing
    stored = accounts(org).set_index(KEY)["Description"]
    assert stored.fillna("")[[f"K{i}" for i in range(len(AWKWARD))]].tolist() == AWKWARD
    # Again: every row updates; the jobs fill byte-exact to max_bytes.
    res = sfb.upsert_csv(path, "Account", KEY, block_size=256, max_bytes=800, **QUIET)
    assert res.counts["updated"] == 120
    sizes = res.jobs["bytes"]
    assert len(sizes) > 3 and (sizes <= 800).all() and (sizes.iloc[:-1] > 800 - 60).all()
    assert res.jobs["rows"].sum() == 120


def test_crlf_line_endings_and_a_byte_order_mark(client, org, tmp_path):
    path = tmp_path / "bom.csv"
    lines_of = write_csv(path, 30, eol="\r\n", encoding="utf-8-sig")
    res = sfb.upsert_csv(path, "Account", KEY, block_size=200, **QUIET)
    assert res.ok and res.counts["created"] == 30
    frame = res.frame()
    assert dict(zip(frame[KEY], frame["line"])) == lines_of


def test_update_csv_and_delete_csv_by_id(client, org, tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 30)
    ids = sfb.upsert_csv(path, "Account", KEY, **QUIET).frame()["sf_id"]
    changes = tmp_path / "changes.csv"
    pd.DataFrame({"Id": ids, "Name": [f"Renamed {i}" for i in range(30)]}).to_csv(
        changes, index=False)
    res = sfb.update_csv(changes, "Account", block_size=200, max_records=8, **QUIET)
    assert res.ok and res.counts["updated"] == 30
    assert res.frame()["Id"].tolist() == ids.tolist()
    assert accounts(org)["Name"].str.startswith("Renamed").all()
    res = sfb.delete_csv(changes, "Account", block_size=200, **QUIET)  # Name is left out
    assert res.ok and res.counts["deleted"] == 30 and len(accounts(org)) == 0
    with pytest.raises(errors.InputError, match="hard must be"):
        sfb.delete_csv(changes, "Account", hard="no", **QUIET)


def test_a_bad_row_in_the_third_block_names_its_line_and_nothing_is_sent(client, org, tmp_path):
    path = tmp_path / "bad.csv"
    lines_of = write_csv(path, 60)
    bad = lines_of["K25"]  # far past the first blocks of ~8 rows
    write_csv(path, 60, bad_line=bad)
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_csv(path, "Account", KEY, block_size=300, **QUIET)
    problems = caught.value.problems
    assert problems["row"].tolist() == [bad]
    assert "NumberOfEmployees" in problems["column"].tolist()
    assert len(accounts(org)) == 0
    assert not (tmp_path / "bad.results.csv").exists()
    # skip: the row is left out with its reason, on its line; the others go.
    res = sfb.upsert_csv(path, "Account", KEY, block_size=300, on_invalid="skip", **QUIET)
    assert res.counts["created"] == 59 and res.counts["invalid"] == 1
    row = res.frame(status="invalid")
    assert row["line"].tolist() == [bad] and row[KEY].tolist() == ["K25"]
    assert res.errors.loc[0, "first_line"] == bad


def test_a_ragged_line_is_named(client, org, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text(f"{KEY},Name\nA,a\nB,b\n" + "C,c,extra\n" + "D,d\n")
    with pytest.raises(errors.InputError, match="line 4"):
        sfb.upsert_csv(path, "Account", KEY, block_size=8, **QUIET)
    assert len(accounts(org)) == 0


@pytest.mark.parametrize("text,error", [
    (f"{KEY},Name,\nA,a,\nB,b,\n", None),  # trailing commas: an unnamed empty column
    (f"{KEY},Name\rA,a\rB,b\r", None),  # old Mac line endings
    (f'"{KEY}","Name"\nA,a\nB,b', None),  # quoted header, no newline at the end
    (f"{KEY},Name,\nA,a,\nB,b,x\n", "line 3: a value past the header's 2 columns"),
    (f"{KEY},Name\n", "a header line but no data rows"),
    ("", "is empty"),
    (f"{KEY};Name\nA;a\n", "looks separated by ';', not ','"),
])
def test_csv_shapes(client, org, tmp_path, text, error):
    path = tmp_path / "shape.csv"
    path.write_bytes(text.encode())
    if error is None:
        res = sfb.upsert_csv(path, "Account", KEY, **QUIET)
        assert res.ok and res.frame()["line"].tolist() == [2, 3]
    else:
        with pytest.raises(errors.InputError, match=error):
            sfb.upsert_csv(path, "Account", KEY, **QUIET)


def test_a_cp1252_file_is_refused_naming_the_byte_and_line_then_read_with_its_encoding(
        client, org, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(f"{KEY},Name\r\nA,plain\r\nB,caf\xe9 cr\xe8me\r\n".encode("cp1252"))
    with pytest.raises(errors.InputError) as caught:
        sfb.upsert_csv(path, "Account", KEY, **QUIET)
    message = str(caught.value)
    assert "0xe9" in message and "line 3" in message and 'encoding="cp1252"' in message
    res = sfb.upsert_csv(path, "Account", KEY, encoding="cp1252", **QUIET)
    assert res.ok and res.counts["created"] == 2
    assert "café crème" in accounts(org)["Name"].tolist()


def test_a_semicolon_export_says_which_sep_to_pass_and_loads_with_it(client, org, tmp_path):
    # Excel in a European locale: ";" between fields, "," in the numbers' text, cp1252.
    path = tmp_path / "export.csv"
    path.write_bytes(f'{KEY};Name\r\nA;"Müller; Söhne"\r\nB;1,5 Straße\r\n'.encode("cp1252"))
    with pytest.raises(errors.InputError, match=r"looks separated by ';', not ',' .*pass sep=';'"):
        sfb.upsert_csv(path, "Account", KEY, encoding="cp1252", **QUIET)
    res = sfb.upsert_csv(path, "Account", KEY, encoding="cp1252", sep=";", **QUIET)
    assert res.ok and res.counts["created"] == 2
    assert sorted(accounts(org)["Name"]) == ["1,5 Straße", "Müller; Söhne"]
    with pytest.raises(errors.InputError, match="sep must be the one character"):
        sfb.upsert_csv(path, "Account", KEY, encoding="cp1252", sep=";;", **QUIET)


def test_parquet_results_and_frame_with_a_limit(client, org, tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 40)
    out = tmp_path / "out.parquet"
    res = sfb.upsert_csv(path, "Account", KEY, results=out, block_size=300, **QUIET)
    assert res.path == out and res.ok
    first = res.frame(limit=7)
    assert len(first) == 7 and first["line"].is_monotonic_increasing
    assert first["sf_status"].eq("created").all()
    assert len(res.frame()) == 40
    assert pd.read_parquet(out)["sf_status"].eq("created").sum() == 40
    with pytest.raises(errors.InputError, match=".csv or .parquet"):
        sfb.upsert_csv(path, "Account", KEY, results=tmp_path / "out.xlsx", **QUIET)


def test_duplicate_keys_across_blocks_are_refused_or_reported(client, org, tmp_path):
    path = tmp_path / "dups.csv"
    lines_of = write_csv(path, 40, key_of=lambda i: f"K{i % 30}")  # K0..K9 come back
    # Checked first (on_invalid="raise"): the first repeat, how many, nothing sent.
    with pytest.raises(errors.InputError, match=r"line 41, column customExtIdField__c: the key "
                       r"'K0' is on line 2 too .*\(9 more repeated key\(s\) in the file\)\. "
                       r"Nothing was sent\. Fix: keep one line per key"):
        sfb.upsert_csv(path, "Account", KEY, block_size=200, **QUIET)
    assert len(accounts(org)) == 0
    res = sfb.upsert_csv(path, "Account", KEY, block_size=200, on_invalid="skip", **QUIET)
    assert res.counts["created"] == 30 and res.counts["invalid"] == 10
    dups = res.frame(status="invalid")
    assert dups["sf_error_code"].eq("DUPLICATE_VALUE").all()
    assert dups["line"].min() > lines_of["K29"] - 1
    assert "line 2 " in dups["sf_error_message"].iloc[0]
    # Blocks of a line or two: the repeat names both lines.
    path.write_text(f"{KEY},Name\n" + "\n".join(f"k{i},n" for i in range(5)) + "\nk3,n\n")
    with pytest.raises(errors.InputError, match="line 7, .*'k3' is on line 5 too"):
        sfb.upsert_csv(path, "Account", KEY, block_size=16, **QUIET)


def test_an_iterable_of_frames_streams_with_the_same_result(client, org, tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 50)
    out = tmp_path / "chunks.results.csv"
    chunks = pd.read_csv(path, chunksize=12, dtype=str, keep_default_na=False)
    res = sfb.upsert_df(chunks, "Account", KEY, results=out, max_records=20, **QUIET)
    assert isinstance(res, sfb.StreamResult) and res.ok
    assert res.counts["created"] == 50 and res.jobs["rows"].tolist() == [20, 20, 10]
    frame = res.frame()
    assert frame["row"].tolist() == list(range(50))
    assert frame[KEY].tolist() == [f"K{i}" for i in range(50)]

    def gen():
        for start in range(0, 30, 7):
            yield pd.DataFrame({"Name": [f"New {i}" for i in range(start, min(30, start + 7))]})

    res = sfb.insert_df(gen(), "Account", results=tmp_path / "ins.parquet", **QUIET)
    assert res.counts["created"] == 30
    ids = res.frame()["sf_id"]
    assert ids.notna().all() and ids.is_unique
    # delete by a stream of id frames; a plain list of ids still works as before
    res = sfb.delete_df((ids.iloc[i:i + 10].to_frame("Id") for i in range(0, 30, 10)),
                        "Account", results=tmp_path / "del.csv", **QUIET)
    assert res.counts["deleted"] == 30
    assert sfb.delete_df(iter([]), "Account", **QUIET).counts.sum() == 0


def test_a_bad_block_of_an_iterable_stops_the_run_and_says_what_was_sent(client, org, tmp_path):
    good = pd.DataFrame({KEY: [f"K{i}" for i in range(10)], "Name": "n"})
    bad = pd.DataFrame({KEY: ["K10", "K11"], "Name": "n", "NumberOfEmployees": ["x", "1"]})

    def gen():
        yield good
        yield good.assign(**{KEY: [f"K{i}" for i in range(20, 30)]})
        yield bad.drop(columns="NumberOfEmployees").assign(Name=["n", "y" * 300])

    out = tmp_path / "r.csv"
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_df(gen(), "Account", KEY, results=out, max_records=10, **QUIET)
    res = caught.value.result
    assert res.stopped_at == 20 and "ValidationError" in res.stop_reason
    assert res.counts["created"] == 20 and res.rows_sent == 20
    assert len(accounts(org)) == 20
    assert len(pd.read_csv(out)) == 20
    assert "row 20" in res.stop_text()


def test_nothing_is_lost_when_jobs_fail_or_cannot_be_created(client, org, tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 60)
    # A lost answer to a close, and a job that the org fails part way.
    org.faults.add(after=True, drop=True, method="PATCH", path=r"/jobs/ingest/[^/]+$")
    org.fail_next_job("InvalidBatch : simulated", after_records=5)
    res = sfb.upsert_csv(path, "Account", KEY, block_size=300, max_records=20, **QUIET)
    frame = res.frame()
    assert len(frame) == 60 and frame["line"].is_unique
    assert res.counts["unprocessed"] == 15 and res.counts["created"] == 45
    assert not res.ok
    assert frame.loc[frame["sf_status"] == "unprocessed", "sf_error_code"].eq(
        "JOB_FAILED").all()
    assert len(accounts(org)) == 45
    assert (res.errors["status"] == "unprocessed").any()
    # The org refuses every create: every row comes back not_sent, none lost.
    org.reset()
    org.faults.add(status=503, method="POST", path="/jobs/ingest$", times=None)
    res = sfb.upsert_csv(path, "Account", KEY, block_size=300, max_records=20, **QUIET)
    org.faults.clear()
    frame = res.frame()
    assert res.counts["not_sent"] == 60 and len(frame) == 60
    assert frame["sf_error_message"].str.contains("not sent").all()
    assert res.exceptions and not res.ok
    assert len(accounts(org)) == 0


def test_rows_failed_by_lock_contention_are_resent_from_the_jobs_own_bytes(client, org,
                                                                          tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 60)
    org.faults.lock_rows(share=0.3, seed=4, times=None)
    res = sfb.upsert_csv(path, "Account", KEY, block_size=300, max_records=20, lock_retries=6,
                         **QUIET)
    org.faults.clear()
    frame = res.frame()
    assert res.ok and frame["sf_status"].eq("created").all() and len(frame) == 60
    assert frame["sf_attempts"].max() > 1 and frame["sf_id"].is_unique
    stored = accounts(org).set_index(KEY)["Description"].fillna("")
    assert stored[[f"K{i}" for i in range(len(AWKWARD))]].tolist() == AWKWARD


def test_a_run_stopped_part_way_says_which_lines_were_sent_and_carries_on(client, org,
                                                                          tmp_path):
    path = tmp_path / "a.csv"
    bad = write_csv(path, 60)["K30"]
    good = path.read_bytes()
    path.write_bytes(good.replace(b"\nK30,Name 30,plain,30\n", b"\nK30,Name 30,plain,30,x\n"))
    with pytest.raises(errors.InputError, match=f"line {bad}: 5 field") as caught:
        sfb.upsert_csv(path, "Account", KEY, block_size=300, max_records=10,
                       on_invalid="skip", **QUIET)
    res = caught.value.result
    frame = res.frame()
    sent = frame[frame["sf_status"] == "created"]
    unsent = frame[frame["sf_status"] == "not_sent"]
    assert res.stopped_at == (unsent["line"].min() if len(unsent) else sent["line"].max() + 1)
    assert len(sent) == res.rows_sent == len(accounts(org)) and len(sent) >= 20
    assert frame["line"].max() < bad and f"start_line={res.stopped_at}" in res.stop_text()
    runs = sfb.runs()
    assert runs.loc[runs["run_id"] == res.run_id, "state"].item() == "stopped"  # over: its stop_text() says where to carry on
    with pytest.raises(errors.InputError, match="streamed load"):
        sfb.resume(res.run_id, pd.DataFrame())
    # Fixed, the rest goes from the line it names: every row once.
    path.write_bytes(good)
    again = sfb.upsert_csv(path, "Account", KEY, start_line=res.stopped_at,
                           results=tmp_path / "rest.csv", **QUIET)
    assert again.ok and again.counts["created"] == 60 - len(sent)
    assert len(accounts(org)) == 60


def test_ctrl_c_stops_the_run_and_the_results_file_keeps_every_row_read(client, org,
                                                                        tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 200)
    seen = []

    def interrupt(message: str) -> None:  # Ctrl-C lands in the main thread, here
        seen.append(message)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="Interrupted: stopped") as caught:
        sfb.upsert_csv(path, "Account", KEY, block_size=300, max_records=10, parallel=2,
                       progress=interrupt, sleep=lambda s: None)
    assert "start_line=" in str(caught.value) and seen
    frame = pd.read_csv(tmp_path / "a.results.csv")
    assert frame["line"].is_unique and len(frame) >= 10
    assert set(frame["sf_status"]) <= {"created", "pending", "not_sent"}
    # Jobs closed before the stop go on in the org: their rows are "pending" in the file
    # and may be written by now; nothing else is.
    created, pending = (frame["sf_status"] == "created").sum(), (frame["sf_status"] == "pending").sum()
    assert created <= len(accounts(org)) <= created + pending
    assert sfb.runs()["state"].tolist()[:1] == ["stopped"]  # not "running"
    first_unsent = int(str(caught.value).split("start_line=")[1].split()[0].rstrip(".;,"))
    assert frame.loc[frame["line"] >= first_unsent, "sf_status"].eq("not_sent").all()


def test_a_file_without_its_key_column_sends_nothing_and_leaves_no_run(client, org,
                                                                       tmp_path):
    path = tmp_path / "nokey.csv"
    path.write_text("Name\na\nb\n")
    for on_invalid in ("raise", "skip"):
        with pytest.raises(errors.ValidationError, match=KEY):
            sfb.upsert_csv(path, "Account", KEY, on_invalid=on_invalid, **QUIET)
    assert not (tmp_path / "nokey.results.csv").exists()
    assert len(sfb.runs()) == 0 and len(accounts(org)) == 0


def test_options_that_need_the_whole_input_are_refused(client, tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, 3)
    with pytest.raises(errors.InputError, match="only_changed"):
        sfb.upsert_csv(path, "Account", KEY, only_changed=True, **QUIET)
    with pytest.raises(errors.InputError, match="no such file"):
        sfb.upsert_csv(tmp_path / "nope.csv", "Account", KEY, **QUIET)
    with pytest.raises(errors.InputError, match="results="):
        sfb.upsert_df(pd.DataFrame({KEY: ["a"]}), "Account", KEY, results="x.csv", **QUIET)


def test_the_cli_streams_a_file(client, org, tmp_path, capsys, monkeypatch):
    # connect("local") inside the CLI re-attaches to the test's org, never the user's own.
    monkeypatch.setitem(orgs._local_orgs, None, org)
    path = tmp_path / "a.csv"
    write_csv(path, 30)
    code = cli.main(["upsert", str(path), "--object", "Account", "--external-id", KEY,
                     "--org", "local", "--stream", "--block-size", "300"])
    out = capsys.readouterr()
    assert code == 0, out
    assert (tmp_path / "a.results.csv").exists()
    assert "30 created" in out.out
    frame = pd.read_csv(tmp_path / "a.results.csv")
    assert frame["sf_status"].eq("created").all() and frame["line"].iloc[0] == 2
    assert len(accounts(org)) == 30
    # A bad line: nothing sent, the line named, exit 2.
    path.write_text(f"{KEY},Name,NumberOfEmployees\nA,a,1\nB,b,lots\n")
    assert cli.main(["upsert", str(path), "--object", "Account", "--external-id", KEY,
                     "--org", "local", "--stream"]) == 2
    err = capsys.readouterr().err
    assert "nothing was sent" in err and "NumberOfEmployees" in err and "3" in err


@pytest.fixture
def org_elsewhere(tmp_path):
    """A local org in a process of its own: the peaks traced here are the client's."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sfbulk_nb.cli", "localorg", "serve",
                             "--port", str(port), "--db", str(tmp_path / "org.sqlite3")],
                            stdout=subprocess.PIPE, text=True)
    try:
        token = next(line.split("access token:")[1].strip() for line in proc.stdout
                     if "access token:" in line)
        yield sfb.connect(instance_url=f"http://127.0.0.1:{port}", access_token=token,
                          quiet=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _peak(org, path, tmp_path):
    tracemalloc.start()
    try:
        res = sfb.upsert_csv(path, "Account", KEY, block_size=64 << 10, max_bytes=250_000,
                             results=tmp_path / f"{path.stem}.out.csv", org=org, **QUIET)
        return tracemalloc.get_traced_memory()[1], res
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_file_grows(org_elsewhere, tmp_path):
    org = org_elsewhere
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    for path, n in ((small, 10_000), (large, 40_000)):  # rows of ~215 bytes
        pd.DataFrame({KEY: [f"M{i}" for i in range(n)], "Name": "x" * 200}).to_csv(
            path, index=False)
    peak_small, res = _peak(org, small, tmp_path)
    assert res.counts["created"] == 10_000
    peak_large, res = _peak(org, large, tmp_path)
    assert res.counts["updated"] == 10_000 and res.counts["created"] == 30_000
    # Held whole, each extra row would cost more than its 215 bytes; streamed and checked
    # first (on_invalid="raise"), its key's hash and line go to disk: nothing per row stays
    # (kept in memory they were 16 bytes, 32 while runs merge).
    assert (peak_large - peak_small) / 30_000 < 8, (peak_small, peak_large)
    print(f"tracemalloc peaks: {peak_small / 1e6:.1f} MB at 10,000 rows, "
          f"{peak_large / 1e6:.1f} MB at 40,000")


def test_a_messy_file_is_fixed_by_following_its_error_word_for_word(client, org, tmp_path,
                                                                    monkeypatch):
    """The refusal of a file names lines, and its fixes (pandas code) say how to get the
    `df` they apply to: doing exactly that gives a file that loads."""
    monkeypatch.chdir(tmp_path)
    Path("messy.csv").write_text(
        f"{KEY},Name,NumberOfEmployees,AnnualRevenue,Industry,Founded__c\n"
        'A1,Acme,12,"1,200.50",Banking,2020-01-31\n'
        "A2,Beta,twelve,300,Bankng,03/04/2020\n"
        "A3,,5,10,#N/A,31/01/2021\n")
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_csv("messy.csv", "Account", KEY, **QUIET)
    text = str(caught.value)
    assert "the file has problems" in text and "1 row at line 3" in text
    assert " at rows " not in text
    advice = re.search(r"(df = pd\.read_csv\(.*?\)) \(so .*?then (df\.to_csv\(.*?\))", text)
    namespace = {"pd": pd}
    exec(advice.group(1), namespace)
    for hint in caught.value.problems.summary()["hint"]:
        if "Name" not in hint:  # the warning: a blank Name fails only a new record
            exec(hint, namespace)
    exec(advice.group(2), namespace)
    res = sfb.upsert_csv("messy.fixed.csv", "Account", KEY, **QUIET)
    assert res.counts["created"] == 2 and res.counts["failed"] == 1  # A3 has no Name
    got = accounts(org).set_index(KEY)
    assert got.loc["A2", "Name"] == "Beta"
    stored = sfb.query_df(f"SELECT {KEY}, Industry, Founded__c, AnnualRevenue FROM Account",
                          org=client, progress=False).set_index(KEY)
    assert stored.loc["A2", "Industry"] == "Banking"
    assert str(stored.loc["A2", "Founded__c"]) == "2020-04-03"  # day first, as seen
    assert stored.loc["A1", "AnnualRevenue"] == 1201  # no decimals on the field: half up


def test_the_check_of_a_file_lists_the_problems_of_every_block(client, org, tmp_path,
                                                                monkeypatch):
    """One round of fixes: the refusal lists the problems of the whole file, not only of
    the first block that has some; a file with very many problems stops at a cap."""
    path = tmp_path / "bad.csv"
    lines = [f"{KEY},Name,NumberOfEmployees"]
    lines += [f"K{i},Name {i},{'lots' if i in (3, 70, 140) else i}" for i in range(150)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_csv(path, "Account", KEY, block_size=200, **QUIET)  # ~10 lines a block
    assert caught.value.problems["row"].tolist() == [5, 72, 142]  # their lines
    text = str(caught.value)
    assert "3 rows at lines 5, 72, 142" in text and "every line of the file was checked" in text
    assert len(accounts(org)) == 0
    # Past the cap, the check stops where it got to and says so.
    monkeypatch.setattr("sfbulk_nb.stream._StreamLoad.PROBLEMS_LISTED", 2)
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_csv(path, "Account", KEY, block_size=200, **QUIET)
    assert caught.value.problems["row"].tolist() == [5, 72]
    assert re.search(r"the check stopped at line \d+, after 2 problems", str(caught.value))


def test_a_file_that_warns_on_every_row_keeps_only_some_warnings(client, org, tmp_path,
                                                                 monkeypatch):
    # Cents in a field of no decimals: a warning per row, which the check must not pile
    # up; the errors are still all listed.
    monkeypatch.setattr("sfbulk_nb.stream._StreamLoad.WARNINGS_LISTED", 5)
    path = tmp_path / "cents.csv"
    lines = [f"{KEY},Name,AnnualRevenue,NumberOfEmployees"]
    lines += [f"C{i},Name {i},{i}.25,{'lots' if i in (60, 130) else i}" for i in range(150)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_csv(path, "Account", KEY, block_size=200, **QUIET)
    problems = caught.value.problems
    assert problems[problems["severity"] == "error"]["row"].tolist() == [62, 132]
    assert 5 <= (problems["severity"] == "warning").sum() < 30  # a block's worth at most
    # No error: the warnings do not stop the load.
    path.write_text("\n".join(lines).replace(",lots", ",7") + "\n")
    res = sfb.upsert_csv(path, "Account", KEY, block_size=200, **QUIET)
    assert res.counts["created"] == 150


def test_an_excel_export_is_fixed_by_following_its_errors(client, org, tmp_path, monkeypatch):
    """A European Excel export (Windows-1252, ';'): each refusal says what to pass, and
    the fixes read the file as it is written, then write one that loads as it is."""
    monkeypatch.chdir(tmp_path)
    Path("export.csv").write_bytes(
        f"{KEY};Name;AnnualRevenue\nE1;Café Zürich;1.250,50\nE2;Bäckerei;300\n"
        .encode("cp1252"))
    with pytest.raises(errors.InputError, match='pass encoding="cp1252"'):
        sfb.upsert_csv("export.csv", "Account", KEY, **QUIET)
    with pytest.raises(errors.InputError, match="pass sep=';'"):
        sfb.upsert_csv("export.csv", "Account", KEY, encoding="cp1252", **QUIET)
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_csv("export.csv", "Account", KEY, encoding="cp1252", sep=";", **QUIET)
    text = str(caught.value)
    advice = re.search(r"(df = pd\.read_csv\(.*?\)) \(so .*?then (df\.to_csv\(.*?\))", text)
    assert "encoding='cp1252', sep=';'" in advice.group(1)
    assert "load it with neither" in text
    namespace = {"pd": pd}
    exec(advice.group(1), namespace)
    for hint in caught.value.problems.summary()["hint"]:
        exec(hint, namespace)
    exec(advice.group(2), namespace)
    res = sfb.upsert_csv("export.fixed.csv", "Account", KEY, **QUIET)
    assert res.ok and res.counts["created"] == 2
    got = accounts(org).set_index(KEY)
    assert got.loc["E1", "Name"] == "Café Zürich"
    revenue = sfb.query_df(f"SELECT {KEY}, AnnualRevenue FROM Account", org=client,
                           progress=False).set_index(KEY)["AnnualRevenue"]
    assert revenue["E1"] == 1251 and revenue["E2"] == 300  # 1.250,50 -> 1250.5, half up


def test_validate_csv_lists_every_problem_of_a_file_and_sends_nothing(client, org, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [f"{KEY},Name,NumberOfEmployees,Industry"]
    lines += [f"V{i},Name {i},{i},Banking" for i in range(300)]
    lines[5] = "V4,,many,Nope"  # line 6: three problems
    lines.append("V10,Again,1,Energy")  # line 302 repeats line 12's key, blocks apart
    Path("v.csv").write_text("\n".join(lines) + "\n")
    problems = sfb.validate_csv("v.csv", "Account", KEY, block_size=1_000, **QUIET)
    assert isinstance(problems, sfb.Problems)
    got = sorted(zip(problems["row"], problems["code"].astype(str)))
    assert got == [(6, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
                   (6, "INVALID_TYPE_ON_FIELD_IN_RECORD"), (6, "REQUIRED_FIELD_MISSING"),
                   (302, "DUPLICATE_VALUE")]
    text = repr(problems)
    assert "301 rows checked; nothing was sent" in text and "at line 6" in text
    assert "the key 'V10' is on line 12 too" in text
    shown = problems._repr_html_()  # in a notebook: where to look, by line
    assert "line 6</small>" in shown and "line 302</small>" in shown
    assert "301 rows checked; nothing was sent" in shown
    assert list(tmp_path.glob("*.results.*")) == [] and len(accounts(org)) == 0
    # A clean file: no problems, still nothing sent.
    Path("clean.csv").write_text(f"{KEY},Name\nC1,One\nC2,Two\n")
    clean = sfb.validate_csv("clean.csv", "Account", KEY, **QUIET)
    assert len(clean) == 0 and "no problems" in repr(clean)
    Path("one.csv").write_text(f"{KEY},Name\nO1,One\n")
    assert "(1 row checked; nothing was sent)" in repr(
        sfb.validate_csv("one.csv", "Account", KEY, **QUIET))
    assert len(accounts(org)) == 0
    # A column no field matches is said once, however many blocks the file has.
    Path("col.csv").write_text(f"{KEY},Name,Bogus__c\n" + "".join(
        f"B{i},N{i},x\n" for i in range(200)))
    column = sfb.validate_csv("col.csv", "Account", KEY, block_size=500, **QUIET)
    assert list(column["code"].astype(str)) == ["INVALID_FIELD"]
    with pytest.raises(errors.InputError, match="needs external_id"):
        sfb.validate_csv("clean.csv", "Account", **QUIET)


def test_a_file_excel_saved_long_keys_in_is_refused_by_line(client, org, tmp_path, monkeypatch):
    """The usual way keys lose their digits: an Excel export. Refused before sending,
    by the line, with what happened."""
    monkeypatch.chdir(tmp_path)
    Path("x.csv").write_text(f"{KEY},Name\n123456789012,Kept\n1.23457E+11,Lost\n")
    problems = sfb.validate_csv("x.csv", "Account", KEY, **QUIET)
    assert list(zip(problems["row"], problems["code"].astype(str))) == [
        (3, "NUMBER_IN_SCIENTIFIC_NOTATION")]
    with pytest.raises(errors.ValidationError, match="scientific notation"):
        sfb.upsert_csv("x.csv", "Account", KEY, **QUIET)
    assert len(accounts(org)) == 0


def test_excels_sep_line_names_the_separator_and_lines_keep_their_numbers(client, org, tmp_path,
                                                                         monkeypatch):
    """Excel writes "sep=;" as the first line where it wants the separator known. The
    header is the line after it; rows keep their file lines; a row with a field too many
    is refused by its line, never dropped unsaid; a sep= passed against it is refused;
    the fixes say how pandas reads such a file, and that advice works as written."""
    monkeypatch.chdir(tmp_path)
    head = f"\ufeffsep=;\r\n{KEY};Name;NumberOfEmployees\r\n"
    Path("x.csv").write_text(head + 'S1;One;1\r\nS2;"Two\r\nlines";x\r\nS3;Three;3\r\n',
                             encoding="utf-8", newline="")
    problems = sfb.validate_csv("x.csv", "Account", KEY, **QUIET)
    assert list(zip(problems["row"], problems["column"])) == [(4, "NumberOfEmployees")]
    with pytest.raises(errors.ValidationError) as refused:
        sfb.upsert_csv("x.csv", "Account", KEY, **QUIET)
    advice = re.search(r"df = (pd\.read_csv\([^)]*\))", str(refused.value)).group(1)
    assert "sep=';'" in advice and "skiprows=1" in advice
    df = eval(advice, {"pd": pd})  # the advice, word for word
    assert list(df.columns) == [KEY, "Name", "NumberOfEmployees"] and len(df) == 3
    assert len(accounts(org)) == 0
    with pytest.raises(errors.InputError, match=r"says its fields are separated by ';'"):
        sfb.validate_csv("x.csv", "Account", KEY, sep="\t", **QUIET)
    # A field too many on the last line: named by its line (it was read past, unsaid).
    Path("ragged.csv").write_text(head + 'S1;One;1\r\nS2;"Two\r\nlines";2\r\nS3;Three;3;9\r\n',
                                  encoding="utf-8", newline="")
    with pytest.raises(errors.InputError, match=r"ragged\.csv, line 6: 4 field\(s\)"):
        sfb.validate_csv("ragged.csv", "Account", KEY, **QUIET)
    Path("ok.csv").write_text(head + "S1;One;1\r\nS2;Two;2\r\n", encoding="utf-8", newline="")
    res = sfb.upsert_csv("ok.csv", "Account", KEY, **QUIET)
    assert res.ok and list(res.frame()["line"]) == [3, 4] and len(accounts(org)) == 2
