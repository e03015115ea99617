"""`sealgate demo`: sign → verify → gate → watch on this machine, offline, then clean up.

Everything it makes lives in a temporary directory (keys, the ledger, a
throwaway registry's storage) or carries a ``sealgate-demo`` label (images,
containers) and is removed at the end. It needs a Docker engine; the
registry part needs a registry (``--registry HOST`` or the Debian
``docker-registry`` binary) and is skipped, with a note, without one.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from gate import commands, keys, policy
from gate._cli_style import use_color
from gate.engine import Engine
from gate.errors import EngineError, UsageError
from gate.report import OutputFormat, ReportContext, render
from gate.result import Result

LABEL = "sealgate-demo"


def say(text: str) -> None:
    bold = use_color("auto", sys.stdout)
    print(f"\n\033[1m== {text}\033[0m" if bold else f"\n== {text}", flush=True)


def show(results: Sequence[Result]) -> None:
    print(
        render(
            results,
            OutputFormat.TEXT,
            ReportContext(command="demo"),
            color=use_color("auto", sys.stdout),
        )
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_registry(directory: Path) -> Iterator[str | None]:
    """A docker-registry on a free loopback port, or None when the binary is missing."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        yield None
        return
    port = _free_port()
    config = directory / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory / 'storage'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _build(client: Any, directory: Path, name: str) -> str:
    """A tiny runnable image (static busybox) or, without busybox, a single-file image."""
    context = directory / name
    context.mkdir()
    (context / "nonce").write_bytes(secrets.token_bytes(16))
    busybox = shutil.which("busybox")
    lines = ["FROM scratch", "COPY nonce /nonce"]
    if busybox:
        shutil.copy(busybox, context / "busybox")
        lines += ["COPY busybox /bin/busybox", 'CMD ["/bin/busybox", "sleep", "3600"]']
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    tag = f"sealgate-demo/{name}:1.0"
    client.images.build(
        path=str(context), tag=tag, network_mode="none", rm=True, labels={LABEL: "1"}
    )
    return tag


def run_demo(registry: str | None = None) -> int:
    engine = Engine()
    try:
        engine.ping()
    except EngineError as e:
        raise UsageError(
            f"the demo needs a running Docker engine: {e.message}",
            hint="on Debian: apt-get install docker.io, then dockerd --bridge=none "
            "--iptables=false --ip-forward=false (or run `make demo`, which does it)",
        ) from e
    import docker

    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="sealgate-demo-") as name:
        work = Path(name)
        key = keys.generate()
        _private, public = keys.write_key_pair(str(work / "demo"), key, None)
        print(
            f"Working in {work}; a fresh key pair {public.name} (key ID {key.public_key.short_id})."
        )
        images = {n: _build(client, work, n) for n in ("signed", "unsigned")}
        try:
            code = _story(client, work, images, key, str(public), registry)
        finally:
            for container in client.containers.list(all=True, filters={"label": LABEL}):
                container.remove(force=True)
            for image in images.values():
                with suppress(Exception):
                    client.images.remove(image, force=True)
    print("\nCleaned up: demo containers, images, keys, ledger and registry are gone.")
    return code


def _story(
    client: Any,
    work: Path,
    images: dict[str, str],
    key: keys.PrivateKey,
    public: str,
    registry: str | None,
) -> int:
    ctx = commands.Context(ledger_path=str(work / "ledger.db"))
    pol = policy.from_keys([key.public_key])

    say("1. Sign a local image into the embedded ledger (no registry needed)")
    commands.sign(ctx, [f"docker://{images['signed']}"], key)
    print(f"$ sealgate sign docker://{images['signed']} --key demo.key")
    show(commands.verify(ctx, [f"docker://{images['signed']}"], pol))
    say("2. An image nobody signed is UNKNOWN")
    show(commands.verify(ctx, [f"docker://{images['unsigned']}"], pol))

    pinned: dict[str, str] = {}
    with throwaway_registry(work) if registry is None else _given(registry) as host:
        if host is None:
            say("3. Registry part skipped: no --registry given and no docker-registry binary found")
            print("   (apt-get install docker-registry, or pass --registry HOST:PORT)")
        else:
            say(f"3. Push to the registry at {host}, sign in cosign's format, verify")
            for kind, tag in images.items():
                remote = f"{host}/demo/{kind}"
                client.images.get(tag).tag(remote, "1.0")
                for _ in client.images.push(remote, tag="1.0", stream=True, decode=True):
                    pass
                digest = ctx.client.get_manifest(_repo(remote), "1.0").digest
                pinned[kind] = f"{remote}:1.0@{digest}"
                client.images.remove(f"{remote}:1.0")
            commands.sign(ctx, [pinned["signed"]], key)
            print(f"$ sealgate sign {pinned['signed']} --key demo.key")
            show(commands.verify(ctx, [pinned["signed"], pinned["unsigned"]], pol))
            say("4. Tamper with the signature in the registry: it turns UNTRUSTED")
            _tamper(ctx, pinned["signed"])
            show(commands.verify(ctx, [pinned["signed"]], pol))
            commands.sign(ctx, [pinned["signed"]], key)  # sign again for the gate below
            say("5. The pre-deploy gate over a Compose file: the unsigned image stops the deploy")
            compose = work / "compose.yaml"
            compose.write_text(
                "services:\n"
                f"  api:\n    image: {pinned['signed']}\n"
                f"  worker:\n    image: {pinned['unsigned']}\n"
            )
            print(f"$ sealgate gate {compose.name} --policy policy.yaml")
            run = commands.gate(ctx, [str(compose)], pol)
            show(run.results)

    say("6. The watchdog: containers from both images, one sweep, one alert for the unsigned one")
    if not shutil.which("busybox"):
        print(
            "   skipped: no static busybox to make a runnable image "
            "(apt-get install busybox-static)"
        )
        return 0
    for kind in ("signed", "unsigned"):
        client.containers.run(images[kind], detach=True, network_mode="none", labels={LABEL: kind})
    from gate.watch import WatchOptions

    dog, _ = commands.watchdog(
        ctx,
        None,
        [public],
        alerts=["log:stdout"],
        options=WatchOptions(state_dir=work / "watch", labels=(LABEL,)),
    )
    print("$ sealgate watch --key demo.pub --alert log:stdout   (one sweep)")
    checked = dog.sweep()
    dog.flush(force=True)
    print(
        f"checked {checked} containers with {dog.verifications} verifications; "
        "the trusted one raised no alert, and a second sweep would raise none at all"
    )
    return 0


def _repo(name: str) -> Any:
    from gate.refs import parse

    return parse(name).repository


@contextmanager
def _given(host: str) -> Iterator[str]:
    yield host


def _tamper(ctx: commands.Context, image: str) -> None:
    """Flip one byte of the stored signature, as an attacker with registry write access could."""
    import base64
    import json

    from gate import signatures
    from gate.refs import parse

    ref = parse(image)
    repo, tag = ref.repository, signatures.attachment_tag(ref.digest or "")
    doc = ctx.client.get_manifest(repo, tag).json()
    layer = doc["layers"][0]
    sig = bytearray(base64.b64decode(layer["annotations"][signatures.SIGNATURE_ANNOTATION]))
    sig[10] ^= 1
    layer["annotations"][signatures.SIGNATURE_ANNOTATION] = base64.b64encode(bytes(sig)).decode()
    doc["layers"] = [layer]
    ctx.client.push_manifest(repo, tag, json.dumps(doc).encode(), signatures.OCI_MANIFEST)
