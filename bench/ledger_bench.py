"""Ledger benchmark: signed appends/s, proof time, bytes per entry, against a naive baseline.

Targets (issue 6): over 1,000 signed appends/s on one core, inclusion proofs
under 5 ms at 100,000 entries. Each append is a real one: make a simple-signing
payload, sign it (ECDSA P-256), verify it, append, sign a checkpoint, commit.
The baseline is the obvious design that recomputes the root from every leaf on
each append and builds proofs from all leaves, measured in the same run.

    python bench/ledger_bench.py                  # 2,000 entries, well under a minute
    python bench/ledger_bench.py --entries 100000 # the issue's size
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gate import merkle
from gate.keys import PrivateKey, generate
from gate.ledger import Checkpoint, Ledger, verify_inclusion_proof

MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"


def signed(key: PrivateKey, n: int) -> tuple[str, bytes, bytes]:
    """Subject, payload and signature of a cosign-like statement for image ``n``."""
    subject = "sha256:" + hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"registry.example/team/app{n % 97}"},
                "image": {"docker-manifest-digest": subject},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    return subject, payload, key.sign(payload)


def append_ours(ledger: Ledger, key: PrivateKey, n: int) -> None:
    subject, payload, signature = signed(key, n)
    ledger.append(
        kind="sign", subject=subject, name=f"registry.example/team/app{n % 97}",
        payload_type=MEDIA_TYPE, payload=payload, signature=signature,
        public_key=key.public_key, writer=key,
    )  # fmt: skip


class NaiveLedger:
    """The baseline: same statements, same signatures, but a full root recompute per append."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, body BLOB, leaf BLOB)")
        self.db.execute("CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, body BLOB, sig BLOB)")

    def append(self, key: PrivateKey, n: int) -> None:
        subject, payload, signature = signed(key, n)
        if not key.public_key.verify(signature, payload):
            raise AssertionError("bad statement")
        body = json.dumps([subject, payload.hex(), signature.hex()]).encode()
        self.db.execute("BEGIN IMMEDIATE")
        size = self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        self.db.execute(
            "INSERT INTO entries VALUES (?, ?, ?)", (size, body, merkle.leaf_hash(body))
        )
        leaves = [row[0] for row in self.db.execute("SELECT leaf FROM entries ORDER BY idx")]
        checkpoint = Checkpoint.create(size + 1, merkle.root(leaves), datetime.now(UTC), key)
        self.db.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?)",
            (size + 1, checkpoint.body(), checkpoint.signature),
        )
        self.db.execute("COMMIT")


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    """Wall time of each call, in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000, help="signed appends to make")
    parser.add_argument("--baseline-entries", type=int, default=1000, help="size of the A/B run")
    parser.add_argument("--proofs", type=int, default=500, help="inclusion proofs to time")
    parser.add_argument("--dir", type=Path, help="where to put the ledger (default: a temp dir)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    work = Path(args.dir or tempfile.mkdtemp(prefix="sealgate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    key = generate()
    n, b = args.entries, min(args.baseline_entries, args.entries)
    print(f"sealgate ledger benchmark: {n:,} signed appends (ecdsa-p256), one core, "
          f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")  # fmt: skip

    path = work / "ledger.db"
    path.unlink(missing_ok=True)
    ledger = Ledger.open(path)
    start = time.perf_counter()
    for i in range(n):
        append_ours(ledger, key, i)
    rate = n / (time.perf_counter() - start)
    verdict = "PASS" if rate > 1000 else "MISS"
    print(
        f"append   {rate:10,.0f} appends/s  ({1000 / rate:.2f} ms each; target > 1,000/s) {verdict}"
    )

    # A/B at a small size: ours vs. recomputing the root from every leaf.
    (work / "ab.db").unlink(missing_ok=True)
    (work / "naive.db").unlink(missing_ok=True)
    with Ledger.open(work / "ab.db") as small:
        start = time.perf_counter()
        for i in range(b):
            append_ours(small, key, i)
        ours_small = b / (time.perf_counter() - start)
    naive = NaiveLedger(work / "naive.db")
    start = time.perf_counter()
    for i in range(b):
        naive.append(key, i)
    naive_rate = b / (time.perf_counter() - start)
    print(f"baseline {naive_rate:10,.0f} appends/s  naive full recompute, {b:,} entries; "
          f"ours {ours_small:,.0f}/s = {ours_small / naive_rate:.1f}x")  # fmt: skip

    indices = [random.randrange(n) for _ in range(args.proofs)]
    proofs = iter(indices)
    samples = timed(lambda: ledger.inclusion_proof(next(proofs)), len(indices))
    med, tail = statistics.median(samples), p95(samples)
    verdict = "PASS" if tail < 5 else "MISS"
    print(f"proof    inclusion at size {n:,}: median {med:.3f} ms, p95 {tail:.3f} ms "
          f"(target < 5 ms) {verdict}")  # fmt: skip
    proof = ledger.inclusion_proof(indices[0])
    check = timed(lambda: verify_inclusion_proof(proof, key.public_key), 50)
    print(f"check    third-party verify_inclusion_proof: median {statistics.median(check):.3f} ms "
          f"({len(proof['hashes'])} hashes)")  # fmt: skip
    olds = iter(random.randrange(1, n + 1) for _ in range(args.proofs))
    consistency = timed(lambda: ledger.consistency_proof(next(olds), n), args.proofs)
    print(f"proof    consistency to size {n:,}: median {statistics.median(consistency):.3f} ms, "
          f"p95 {p95(consistency):.3f} ms")  # fmt: skip

    db = sqlite3.connect(path)
    leaves = [row[0] for row in db.execute("SELECT hash FROM nodes WHERE level = 0 ORDER BY idx")]
    db.close()
    naive_proofs = timed(lambda: merkle.inclusion_proof(random.randrange(n), leaves), 10)
    naive_med = statistics.median(naive_proofs)
    print(f"baseline proof from all {n:,} leaves: median {naive_med:.2f} ms; "
          f"ours = {naive_med / med:.0f}x faster")  # fmt: skip

    start = time.perf_counter()
    report = ledger.verify(trusted_keys=[key.public_key])
    took = time.perf_counter() - start
    print(f"verify   full recompute of {report.entries:,} entries and {report.checkpoints:,} "
          f"signed checkpoints: {took:.2f} s ({report.entries / took:,.0f} entries/s)")  # fmt: skip
    ledger.close()
    size = path.stat().st_size
    print(
        f"size     {size / n:,.0f} bytes per entry ({size / 1e6:.1f} MB file, "
        "entry + tree nodes + one signed checkpoint each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
