"""Sample data for demos, notebooks and benchmarks: accounts with a few deliberate errors."""
from __future__ import annotations

import numpy as np
import pandas as pd

INDUSTRIES = ["Banking", "Technology", "Retail", "Healthcare", "Energy", "Education",
              "Manufacturing", "Media", "Consulting", "Insurance"]
CITIES = ["Paris", "Lyon", "Berlin", "Madrid", "Lisbon", "Zürich", "Kraków", "Oslo",
          "Dublin", "Milano, IT"]


def sample_accounts(n: int = 3000, *, errors: bool = True, seed: int = 0) -> pd.DataFrame:
    """`n` accounts keyed by customExtIdField__c. With `errors`, about 1% of the rows break a
    rule the org enforces: an Industry outside the restricted picklist (twice as often as
    the others), a missing Name, or a Name over 255 characters."""
    rng = np.random.default_rng(seed)
    industries = [i for i in INDUSTRIES if i != "Manufacturing"]  # not in Account's picklist
    df = pd.DataFrame({
        "customExtIdField__c": [f"ACME-{i:06d}" for i in range(n)],
        "Name": [f"Account {i} {CITIES[i % len(CITIES)].split(',')[0]}" for i in range(n)],
        "Industry": rng.choice(industries, n),
        "NumberOfEmployees": pd.array(rng.integers(1, 50_000, n), dtype="Int64"),
        "AnnualRevenue": np.round(rng.lognormal(14, 1.5, n), 2),
        "BillingCity": rng.choice(CITIES, n),
        "Active__c": rng.random(n) < 0.8,
        "Founded__c": pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 26_000, n), "D"),
    })
    df["Founded__c"] = df["Founded__c"].dt.date
    df.loc[rng.random(n) < 0.1, "NumberOfEmployees"] = pd.NA
    if errors and n >= 10:
        bad = rng.choice(n, size=max(4, n // 100), replace=False)
        kinds = np.arange(len(bad)) % 4
        df.loc[bad[kinds == 0], "Industry"] = "Spaceflight"
        df.loc[bad[kinds == 1], "Name"] = None
        df.loc[bad[kinds == 2], "Name"] = "N" * 300
        df.loc[bad[kinds == 3], "Industry"] = "Manufacturing"
    return df
