"""Verify N signed images in one process vs N separate `sealgate verify` processes.

Prints, all measured in this run on a real docker-registry on loopback:
* registry requests per image in the one-process run, from the registry's
  own access log (target: at most 4 after the first token, referrers included);
* wall time of one process verifying N images, of N separate processes
  verifying one each, and their ratio;
* `sealgate --help` start-up time, against `python -c pass` as a baseline
  (target: under 0.3 s).

    python bench/verify_bench.py [--images 200] [--baseline-images 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate import keys  # noqa: E402
from gate.sign import sign_image  # noqa: E402
from tests.integration.conftest import make_registry, push_random_image  # noqa: E402


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument(
        "--baseline-images",
        type=int,
        default=200,
        help="how many separate processes to time (scaled to --images if fewer)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = make_registry(Path(tmp), "none")
        try:
            client = server.client()
            key = keys.generate()
            pub = Path(tmp) / "ci.pub"
            pub.write_bytes(key.public_key.pem)
            images = []
            for i in range(args.images):
                ref = push_random_image(server, "bench/app", f"v{i}", client=client)
                sign_image(client, ref, key)
                images.append(f"{ref.name}@{ref.digest}")
            print(f"pushed and signed {len(images)} images on {server.host}")

            before = len(server.access_log())
            one_wall, done = timed(
                [
                    sys.executable,
                    "-m",
                    "gate.cli",
                    "verify",
                    *images,
                    "--key",
                    str(pub),
                    "-o",
                    "json",
                ]
            )
            results = json.loads(done.stdout)
            requests = len(server.access_log()) - before
            trusted = sum(r["status"] == "TRUSTED" for r in results)
            assert trusted == len(images), done.stderr[-2000:]

            sample = images[: args.baseline_images]
            start = time.perf_counter()
            for image in sample:
                _, one = timed(
                    [sys.executable, "-m", "gate.cli", "verify", image, "--key", str(pub)]
                )
                assert one.returncode == 0, one.stderr
            many_wall = (time.perf_counter() - start) * len(images) / len(sample)
        finally:
            server.close()

    help_times = [timed([sys.executable, "-m", "gate.cli", "--help"])[0] for _ in range(10)]
    python_times = [timed([sys.executable, "-c", "pass"])[0] for _ in range(10)]
    help_median, python_median = statistics.median(help_times), statistics.median(python_times)

    n = len(images)
    print(f"one process, {n} images:        {one_wall:7.2f} s   ({trusted}/{n} TRUSTED)")
    print(
        f"{n} processes, one image each:  {many_wall:7.2f} s"
        + ("" if len(sample) == n else f"   (timed {len(sample)}, scaled)")
    )
    print(f"speed-up (processes / one):     {many_wall / one_wall:7.1f}x")
    print(
        f"registry requests per image:    {requests / n:7.2f}   "
        f"({requests} total, incl. /v2/ ping; target <= 4)"
    )
    print(
        f"`sealgate --help` median:       {help_median * 1000:7.0f} ms "
        f"(python -c pass: {python_median * 1000:.0f} ms,"
        f" ratio {help_median / python_median:.1f}x; target < 300 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
