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
    # Manufacturing is left out of the valid choices so that each seed's data stays what it
    # was when it was not in the local org's picklist.
    industries = [i for i in INDUSTRIES if i != "Manufacturing"]
    df = pd.DataFrame({
        "customExtIdField__c": [f"ACME-{i:06d}" for i in range(n)],
        "Name": [f"Account {i} {CITIES[i % len(CITIES)].split(',')[0]}" for i in range(n)],
        "Industry": rng.choice(industries, n),
        "NumberOfEmployees": pd.array(rng.integers(1, 50_000, n), dtype="Int64"),
        # Whole amounts: Account.AnnualRevenue is currency(18, 0), cents would be rounded.
        "AnnualRevenue": np.round(rng.lognormal(14, 1.5, n)),
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
        df.loc[bad[kinds == 3], "Industry"] = "Fintech"  # not one of Salesforce's industries
    return df


def messy_accounts_csv(n: int = 200, *, seed: int = 0) -> bytes:
    """An account export as Excel saves one, with the mess analysts meet: a byte order
    mark and CRLF line ends; headers by label (``Account Name ``, with a trailing space,
    ``Annual Revenue``, ``Employees``, ``Active``, ``Founded``, ``Billing City``) and one
    column Salesforce does not know (``Region``); amounts with ``$`` and thousands
    separators, ``Yes``/``No`` flags in any case, US dates, smart quotes, Industry values
    in the wrong case or misspelt or unknown, too-long names, repeated and blank keys, a
    formula's ``#REF!`` left in a few cities, and city names typed several ways (valid, so
    only a look at the data finds them)."""
    import csv
    import io

    rng = np.random.default_rng(seed)
    industries = [i for i in INDUSTRIES if i != "Manufacturing"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["customExtIdField__c", "Account Name ", "Region", "Active", "Founded",
                     "Annual Revenue", "Employees", "Industry", "Billing City"])
    for i in range(n):
        key = f"EXP-{i:05d}"
        if i % 37 == 5:
            key = f"EXP-{i - 1:05d}"  # the row above, exported twice
        elif i % 53 == 7:
            key = ""
        name = f"Account {i} \u201cSmart\u201d" if i % 9 == 0 else f"Account {i}"
        if i % 71 == 3:
            name = "N" * 300
        industry = str(rng.choice(industries))
        if i % 11 == 0:
            industry = industry.lower()
        elif i % 29 == 1:
            industry = "Technolgy"
        elif i % 43 == 2:
            industry = "Spaceflight"
        revenue = float(np.round(rng.lognormal(13, 1.2), 2))
        founded = pd.Timestamp("1950-01-01") + pd.Timedelta(days=int(rng.integers(0, 25_000)))
        writer.writerow([
            key, name, str(rng.choice(["EMEA", "AMER", "APAC"])),
            str(rng.choice(["Yes", "No", "yes", "NO", "Y", "n"])),
            f"{founded.month}/{founded.day}/{founded.year}",
            f"${revenue:,.2f}", f"{int(rng.integers(1, 60_000)):,}", industry,
            _typed_city(str(rng.choice(CITIES)), i),
        ])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _typed_city(city: str, i: int) -> str:
    if i % 89 == 17:
        return "#REF!"  # a lookup formula that broke in the sheet
    if i % 7 == 0:
        return city.upper()
    if i % 13 == 0:
        return f"  {city} "
    return city
