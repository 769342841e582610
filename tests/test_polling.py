"""When a job is polled: the backoff until the job reports progress, then its own pace."""
from __future__ import annotations

import time

import pandas as pd

import sfbulk_nb as sfb
from sfbulk_nb import jobs
from sfbulk_nb.localorg import LocalOrg


def test_the_pace_sets_the_next_poll():
    backoff = jobs.Backoff()
    # 100,000 of 1,000,000 rows in the 2 s since the first progress: 18 s to go -> the cap.
    assert jobs._next_delay(backoff, 1.0, 1_000_000, (0.0, 100_000), 2.0, 200_000) == 10.0
    # 200,000 rows in 2 s (100,000/s), 700,000 to go: 7 s, polled 5% after that.
    assert jobs._next_delay(backoff, 1.0, 1_000_000, (0.0, 100_000), 2.0, 300_000) == \
        1.05 * 7.0
    # About done: never sooner than the backoff's start.
    assert jobs._next_delay(backoff, 1.0, 1_000_000, (0.0, 100_000), 2.0, 999_999) == 0.5
    # No progress since the first report: the planned interval.
    assert jobs._next_delay(backoff, 2.25, 1_000_000, (0.0, 100_000), 2.0, 100_000) == 2.25


def test_wait_follows_the_pace_of_a_scripted_job():
    now = [0.0]
    polls = []

    def poll(org, job_id):  # a job doing 10,000 rows/s from t=1, 100,000 rows in all
        polls.append(now[0])
        processed = int(min(100_000, max(0.0, now[0] - 1.0) * 10_000))
        state = "JobComplete" if processed >= 100_000 else "InProgress"
        return jobs.JobInfo({"id": job_id, "state": state,
                             "numberRecordsProcessed": processed})

    def sleep(seconds):
        now[0] += seconds

    info = jobs.wait(None, "750x", clock=lambda: now[0], sleep=sleep, poll=poll,
                     just_closed=True, records=100_000)
    assert info.done
    # backoff 0.5, 1.25, 2.375 (first progress), 4.06 (pace known: 10,000/s), then the
    # pace's estimate for the rest, capped at 10 s: done by t=11, seen done by about 11.5
    assert len(polls) <= 6 and polls[-1] <= 11.6, polls
    paced = len(polls)
    now[0] = 0.0
    polls.clear()
    jobs.wait(None, "750y", clock=lambda: now[0], sleep=sleep, poll=poll,
              just_closed=True)  # no record count: the backoff alone
    assert len(polls) > paced


def test_a_long_job_is_polled_less_and_seen_done_soon_after(tmp_path, monkeypatch):
    rows = 30_000
    df = pd.DataFrame({"customExtIdField__c": [f"P{i:06d}" for i in range(rows)],
                       "Name": [f"Paced {i}" for i in range(rows)]})
    with LocalOrg(tmp_path / "paced.sqlite3", pace=5_000) as local:  # a 6 s job
        org = sfb.connect(local)
        calls = []
        real_get = jobs.get

        def counting_get(o, j, *a):
            info = real_get(o, j, *a)
            calls.append((time.monotonic(), info.state))
            return info

        monkeypatch.setattr(jobs, "get", counting_get)
        started = time.monotonic()
        res = sfb.upsert_df(df, "Account", "customExtIdField__c", org=org, progress=False)
        assert res.ok and res.counts["created"] == rows
        # The backoff alone polls at 0.5, 1.25, 2.4, 4.1, 6.6 s, ...; with the pace known
        # from the second poll on, 3 (seen here: at 0.6, 1.4 and 6.3 s, the job done at 6.1).
        assert len(calls) <= 4, [(round(t - started, 2), s) for t, s in calls]
        assert calls[-1][1] == "JobComplete"
