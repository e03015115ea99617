"""Gate 200 keyless-signed digests against 200 key-signed ones, in the same run.

Keyless verification checks much more per signature (the certificate chain,
the log's signed entry timestamp, the entry body, the identity), but one CI
run signs many images with one certificate, so the certificate checks are
cached per certificate and the cost per image should stay close to a key
signature's. Both sets live in the same docker-registry, 20 repositories
each; the keyless ones carry cosign v2's keyless ``.sig`` layout made by
tests/sigstore_local.py (a CA and a log of its own, with its trusted root).

Prints the best of ``--rounds`` for each and the ratio (target: at most 1.3).

    python bench/keyless_bench.py [--digests 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate import commands, keys, policy  # noqa: E402
from gate.sign import sign_image  # noqa: E402
from tests.integration.conftest import make_registry, push_random_image  # noqa: E402
from tests.sigstore_local import GITHUB, LocalSigstore, attach_keyless  # noqa: E402

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


def gate_once(tmp: Path, name: str, refs: list[str], pol: policy.Policy) -> float:
    listing = tmp / f"{name}.txt"
    listing.write_text("\n".join(refs) + "\n")
    ctx = commands.Context()
    start = time.perf_counter()
    run = commands.gate(ctx, [str(listing)], pol)
    took = time.perf_counter() - start
    ctx.close()
    failed = [r.reason for r in run.results if r.status.value != "TRUSTED"]
    assert not failed, failed[:3]
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--digests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = make_registry(tmp, "none")
        try:
            key = keys.generate()
            local = LocalSigstore()
            cert_key, cert = local.certificate(WORKFLOW, GITHUB)
            (tmp / "root.json").write_text(json.dumps(local.trusted_root()))
            (tmp / "ci.pub").write_bytes(key.public_key.pem)
            keyed, keyless = [], []
            with server.client() as client:
                for i in range(args.digests):
                    ref = push_random_image(server, f"keyed/svc{i % 20}", f"v{i}", client=client)
                    sign_image(client, ref, key)
                    keyed.append(f"{ref.name}:v{i}@{ref.digest}")
                    ref = push_random_image(server, f"keyless/svc{i % 20}", f"v{i}", client=client)
                    attach_keyless(client, ref, lambda p: local.sign(p, cert_key, cert))
                    keyless.append(f"{ref.name}:v{i}@{ref.digest}")
            key_policy = policy.loads(
                f"version: 1\nsigners:\n  - {{name: ci, key: {tmp / 'ci.pub'}}}\n"
                "rules:\n  - match: '**'\n".encode()
            )
            keyless_policy = policy.loads(
                f"version: 1\ntrust: {{roots: [{tmp / 'root.json'}]}}\n"
                f"signers:\n  - name: release\n    keyless: {{issuer: '{GITHUB}', "
                f"subject: '{WORKFLOW}'}}\nrules:\n  - match: '**'\n    tlog: required\n".encode()
            )
            key_times, keyless_times = [], []
            for _ in range(args.rounds):
                key_times.append(gate_once(tmp, "keyed", keyed, key_policy))
                keyless_times.append(gate_once(tmp, "keyless", keyless, keyless_policy))
        finally:
            server.close()

    def rounds(times: list[float]) -> str:
        return ", ".join(f"{t:.2f}" for t in times)

    best_key, best_keyless = min(key_times), min(keyless_times)
    print(f"{args.digests} digests each, 20 repositories each, docker-registry on loopback")
    print(f"key-signed:     {best_key:.2f} s (rounds: {rounds(key_times)})")
    print(f"keyless-signed: {best_keyless:.2f} s (rounds: {rounds(keyless_times)})")
    print(f"ratio: {best_keyless / best_key:.2f}x (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
