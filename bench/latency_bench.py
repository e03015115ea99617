"""Gate 200 signed digests through a proxy that adds 25 ms each way, as real registries are.

Registries are tens of milliseconds away; on loopback every design looks fast.
This puts a latency-injecting TCP proxy in front of docker-registry and
compares, in the same run and at the same concurrency:

* ``sealgate gate`` (in process) over 200 pinned references (20 repositories,
  ten digests each), reading every place a signature or revocation can live;
* a floor: a bare keep-alive client issuing the three dependent requests a
  digest needs at least (manifest, ``.sig`` manifest, signature blob).

Prints both times, their ratio (target: at most 1.25) and registry requests
per digest from the registry's access log (target: at most 4).

    python bench/latency_bench.py [--digests 200] [--delay-ms 25] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate import commands, keys, policy, signatures  # noqa: E402
from gate.sign import sign_image  # noqa: E402
from tests.integration.conftest import free_port, make_registry, push_random_image  # noqa: E402

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that delivers every chunk ``delay`` seconds after it arrives.

    It runs in a process of its own, as the network is not in the client's
    process: sharing the client's interpreter lock would charge the proxy's work
    to whichever client does more work of its own.
    """

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _serve(self, ready: Any) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, at - loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(deliver())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                await queue.put((loop.time() + self.delay, data))
        await queue.put((0.0, b""))
        with contextlib.suppress(ConnectionError):
            await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(self.delay)  # the SYN's way there
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @contextlib.contextmanager
    def running(self) -> Iterator[LatencyProxy]:
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        process = context.Process(target=self._serve, args=(ready,), daemon=True)
        process.start()
        try:
            if not ready.wait(10):
                raise RuntimeError("the latency proxy did not start")
            yield self
        finally:
            process.terminate()
            process.join(10)


def floor(host: str, refs: list[tuple[str, str]], concurrency: int) -> float:
    """Three dependent requests per digest on a keep-alive pool: the least any verifier does."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))

    def one(item: tuple[str, str]) -> None:
        repo, digest = item
        base = f"http://{host}/v2/{repo}"
        assert session.get(f"{base}/manifests/{digest}", headers={"Accept": ACCEPT}).ok
        sig = session.get(
            f"{base}/manifests/{signatures.attachment_tag(digest)}", headers={"Accept": ACCEPT}
        )
        layer = sig.json()["layers"][0]["digest"]
        assert session.get(f"{base}/blobs/{layer}").ok

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, refs))
    took = time.perf_counter() - start
    session.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--digests", type=int, default=200)
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = make_registry(tmp, "none")
        try:
            key = keys.generate()
            with server.client() as client:
                pushed = []
                for i in range(args.digests):
                    ref = push_random_image(
                        server, f"bench/svc{i % args.repositories}", f"v{i}", client=client
                    )
                    sign_image(client, ref, key)
                    pushed.append(ref)
            port = int(server.host.rsplit(":", 1)[1])
            with LatencyProxy(port, args.delay_ms / 1000).running() as proxy:
                host = f"127.0.0.1:{proxy.port}"
                (tmp / "ci.pub").write_bytes(key.public_key.pem)
                (tmp / "policy.yaml").write_text(
                    f"version: 1\nsigners:\n  - {{name: ci, key: {tmp / 'ci.pub'}}}\n"
                    f"registries: [{host}]\nrules:\n  - match: '**'\n"
                )
                refs = [f"{host}/{r.path}:{r.tag}@{r.digest}" for r in pushed]
                (tmp / "images.txt").write_text("\n".join(refs) + "\n")
                pol = policy.load(tmp / "policy.yaml")
                print(
                    f"{len(refs)} signed digests in {args.repositories} repositories, "
                    f"{args.delay_ms:g} ms each way, {args.concurrency} in flight"
                )
                ours, bare, counts = [], [], []
                for _ in range(args.rounds):
                    bare.append(
                        floor(host, [(r.path, r.digest or "") for r in pushed], args.concurrency)
                    )
                    before = len(server.access_log())
                    ctx = commands.Context(commands.RegistryOptions(concurrency=args.concurrency))
                    start = time.perf_counter()
                    run = commands.gate(ctx, [str(tmp / "images.txt")], pol)
                    ours.append(time.perf_counter() - start)
                    ctx.close()
                    assert all(r.status.value == "TRUSTED" for r in run.results), [
                        r.reason for r in run.results if r.status.value != "TRUSTED"
                    ][:3]
                    time.sleep(0.5)  # the registry's access log is written asynchronously
                    counts.append((len(server.access_log()) - before) / len(refs))
            best_ours, best_bare = min(ours), min(bare)

            def rounds(times: list[float]) -> str:
                return ", ".join(f"{t:.2f}" for t in times)

            print(f"sealgate gate:       {best_ours:.2f} s (rounds: {rounds(ours)})")
            print(f"three-request floor: {best_bare:.2f} s (rounds: {rounds(bare)})")
            print(f"ratio: {best_ours / best_bare:.2f}x (target <= 1.25)")
            print(f"registry requests per digest: {statistics.median(counts):.2f} (target <= 4)")
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
