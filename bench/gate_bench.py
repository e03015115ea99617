"""Gate 2,000 image references (200 distinct signed digests) against a real registry.

Prints, measured in this run on docker-registry on loopback:
* wall time of one `sealgate gate` over a Kubernetes stream holding all the
  references, against checking the same references one by one in one
  process (a verifier per reference, sequential, sharing one HTTP client);
  target: at least 5x faster;
* registry requests per distinct digest during the gate run (registry access
  log; target at most 4: the manifest, the .sig tag, its blob, and referrers);
* peak memory (max RSS) of the gate process (target under 150 MB).

    python bench/gate_bench.py [--refs 2000] [--distinct 200] [--baseline-refs 400]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate import commands, keys, policy  # noqa: E402
from gate.sign import sign_image  # noqa: E402
from tests.integration.conftest import make_registry, push_random_image  # noqa: E402


def k8s_stream(refs: list[str]) -> str:
    """Deployments of five containers each, as `helm template` would render them."""
    docs = []
    for i in range(0, len(refs), 5):
        containers = "".join(
            f"        - name: c{j}\n          image: {ref}\n"
            for j, ref in enumerate(refs[i : i + 5])
        )
        docs.append(
            f"# Source: bench/templates/deploy-{i}.yaml\napiVersion: apps/v1\nkind: Deployment\n"
            f"metadata:\n  name: app-{i}\nspec:\n  template:\n    spec:\n"
            f"      containers:\n{containers}"
        )
    return "---\n".join(docs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--refs", type=int, default=2000)
    parser.add_argument("--distinct", type=int, default=200)
    parser.add_argument(
        "--baseline-refs",
        type=int,
        default=400,
        help="how many references to time one by one (scaled to --refs)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = make_registry(tmp, "none")
        try:
            client = server.client()
            key = keys.generate()
            (tmp / "ci.pub").write_bytes(key.public_key.pem)
            (tmp / "policy.yaml").write_text(
                f"version: 1\nsigners:\n  - name: ci\n    key: {tmp / 'ci.pub'}\n"
                f"registries: [{server.host}]\nrules:\n  - match: '**'\n    pinned: required\n"
            )
            distinct = []
            for i in range(args.distinct):
                ref = push_random_image(server, f"bench/svc{i % 20}", f"v{i}", client=client)
                sign_image(client, ref, key)
                distinct.append(f"{ref.name}:v{i}@{ref.digest}")
            refs = [distinct[i % len(distinct)] for i in range(args.refs)]
            manifest = tmp / "rendered.yaml"
            manifest.write_text(k8s_stream(refs))
            print(f"{len(refs)} references to {len(distinct)} signed digests on {server.host}")

            before = len(server.access_log())
            start = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gate.cli",
                    "gate",
                    str(manifest),
                    "--policy",
                    str(tmp / "policy.yaml"),
                    "-o",
                    "json",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            gate_wall = time.perf_counter() - start
            peak_mb = (
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            )  # the largest waited child
            requests = len(server.access_log()) - before
            results = json.loads(done.stdout)
            assert done.returncode == 0 and all(r["status"] == "TRUSTED" for r in results), (
                done.stderr[-2000:]
            )

            pol = policy.load(tmp / "policy.yaml")
            ctx = commands.Context()
            sample = refs[: args.baseline_refs]
            start = time.perf_counter()
            for ref in sample:
                [result] = commands.verify(ctx, [ref], pol)
                assert result.status.value == "TRUSTED", result.reason
            one_by_one = (time.perf_counter() - start) * len(refs) / len(sample)
        finally:
            server.close()

    print(f"gate, one run:                    {gate_wall:7.2f} s ({len(results)} distinct results)")
    print(
        f"one by one, one process:          {one_by_one:7.2f} s"
        + ("" if len(sample) == len(refs) else f" (timed {len(sample)}, scaled)")
    )
    print(f"speed-up:                         {one_by_one / gate_wall:7.1f}x (target >= 5x)")
    print(
        f"registry requests per digest:     {requests / len(distinct):7.2f} "
        f"({requests} total incl. /v2/ ping; target <= 4)"
    )
    print(f"peak memory of the gate process:  {peak_mb:7.1f} MB (target < 150 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
