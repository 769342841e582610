"""Keys a streamed load has met, to find a key that comes back in a later block.

A key is remembered as a 64-bit hash of its normalized text with the label (line or
position) of its row. Two ways to remember them:

- ``SeenKeys``, in memory (16 bytes a key): answers at once whether a block's keys came
  before, so a load that sends as it reads (on_invalid="skip"/"send", an iterable read
  once) can hold a repeat back. 10,000,000 keys: 160 MB.
- ``SpilledKeys``, on disk (16 bytes a key in a temporary folder, about one bucket in
  memory): answers only at the end, which is all the whole-file check before sending
  (on_invalid="raise") needs, so a file of any size is checked in flat memory. Each
  (hash, label) pair goes to one of BUCKETS files by the hash's top bits; at the end each
  file is read and sorted alone (a repeated key always lands in the same bucket).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

_PAIR = np.dtype([("hash", "<u8"), ("label", "<i8")])


class SeenKeys:
    """Hashes of the keys met so far with their rows' labels, in sorted runs merged like a
    binary counter up to CAP keys a run: a lookup is a binary search per run, memory 16
    bytes per key (a merge needs about twice its run's for a moment: the cap bounds it)."""

    CAP = 1 << 20

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash, the label of the row it was seen on, else -1."""
        found = np.full(len(hashes), -1, np.int64)
        for keys, labels in self.runs:
            at = np.searchsorted(keys, hashes)
            at[at == len(keys)] = 0
            hit = (keys[at] == hashes) if len(keys) else np.zeros(len(hashes), bool)
            found[hit & (found < 0)] = labels[at[hit & (found < 0)]]
        return found

    def add(self, hashes: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        run = (hashes[order], np.asarray(labels, np.int64)[order])
        while (self.runs and len(self.runs[-1][0]) <= len(run[0])
               and len(self.runs[-1][0]) + len(run[0]) <= self.CAP):
            keys, labels_ = self.runs.pop()
            both = np.concatenate([keys, run[0]])
            order = np.argsort(both, kind="stable")
            run = (both[order], np.concatenate([labels_, run[1]])[order])
        self.runs.append(run)


class SpilledKeys:
    """Keys written to disk as they come, checked for repeats at the end. Use as a context
    manager (the folder goes at its end) or call close()."""

    BUCKETS = 64  # 10,000,000 keys: 2.5 MB a bucket to sort

    def __init__(self):
        self._folder = tempfile.TemporaryDirectory(prefix="sfbulk-keys-")
        self._files = [open(Path(self._folder.name) / f"{i:02d}.bin", "wb")
                       for i in range(self.BUCKETS)]
        self.count = 0

    def add(self, hashes: np.ndarray, labels: np.ndarray) -> None:
        pairs = np.empty(len(hashes), _PAIR)
        pairs["hash"], pairs["label"] = hashes, labels
        bucket = (np.asarray(hashes, np.uint64) >> np.uint64(64 - 6)).astype(np.intp)
        order = np.argsort(bucket, kind="stable")  # labels stay in order within a bucket
        edges = np.searchsorted(bucket[order], np.arange(self.BUCKETS + 1))
        pairs = pairs[order]
        for i in np.flatnonzero(np.diff(edges)):
            pairs[edges[i]:edges[i + 1]].tofile(self._files[i])
        self.count += len(pairs)

    def repeats(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row whose key an earlier row had, in label order: (its labels, the
        earlier rows' labels: each repeat names the first row of its key)."""
        later, earlier = [], []
        for f in self._files:
            f.close()
            pairs = np.fromfile(f.name, _PAIR)
            if not len(pairs):
                continue
            pairs = pairs[np.lexsort((pairs["label"], pairs["hash"]))]
            again = np.flatnonzero(pairs["hash"][1:] == pairs["hash"][:-1]) + 1
            if len(again):
                # The first row of each run of equal hashes is the one the others repeat.
                starts = np.flatnonzero(np.r_[True, pairs["hash"][1:] != pairs["hash"][:-1]])
                first = starts[np.searchsorted(starts, again, side="right") - 1]
                later.append(pairs["label"][again])
                earlier.append(pairs["label"][first])
        if not later:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        later_, earlier_ = np.concatenate(later), np.concatenate(earlier)
        order = np.argsort(later_, kind="stable")
        return later_[order], earlier_[order]

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._folder.cleanup()

    def __enter__(self) -> "SpilledKeys":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
