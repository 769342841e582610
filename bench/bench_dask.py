"""The plan stage of a load (checks and encoding: `dry_run`) of a Dask frame vs the same
rows as a pandas frame: on Dask's threaded scheduler and on a two-process LocalCluster,
the partitions persisted first (not in the run by `python -m bench`: it needs the [dask]
extra).

    python bench/bench_dask.py [--rows 500000] [--partitions 8]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

KEY = "customExtIdField__c"


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({KEY: [f"K{i:07d}" for i in range(rows)],
                         "Name": [f'Account, "{i}"' for i in range(rows)],
                         "NumberOfEmployees": rng.integers(1, 10_000, rows),
                         "AnnualRevenue": rng.random(rows) * 1e6,
                         "BillingCity": rng.choice(["Paris", "Zürich", "New\nYork", ""], rows)})


def best(work, repeat: int = 2) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import dask
    import dask.dataframe as dd
    import distributed

    import sfbulk_nb as sfb
    from sfbulk_nb.localorg import LocalOrg

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    pdf = frame(args.rows)
    with LocalOrg() as org:
        sfb.connect(org)
        plain = best(lambda: sfb.dry_run(pdf, "Account", "upsert", KEY))
        with dask.config.set(scheduler="threads"):
            ddf = dd.from_pandas(pdf, npartitions=args.partitions).persist()
            threads = best(lambda: sfb.dry_run(ddf, "Account", "upsert", KEY))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            ddf = client.persist(dd.from_pandas(pdf, npartitions=args.partitions))
            distributed.wait(ddf)
            processes = best(lambda: sfb.dry_run(ddf, "Account", "upsert", KEY))
    print(f"{args.rows:,} rows, {args.partitions} partitions, load "
          f"{os.getloadavg()[0]:.1f}: pandas {plain:.2f} s; Dask threads {threads:.2f} s "
          f"({threads / plain:.2f}x); Dask 2 processes {processes:.2f} s "
          f"({processes / plain:.2f}x)")


if __name__ == "__main__":
    main()
