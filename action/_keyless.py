"""The Action without a ``key``: sign and attest with the job's OIDC identity (issue 12).

Everything is certified by Fulcio and logged in Rekor before anything is
pushed; the summary, the outputs and the commit status name the identity
and link the Rekor entry, so a reviewer sees *who* signed, not a key ID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from action import _env
from action._outcome import Outcome
from action._workflow import PlainRunner
from gate import __version__, attest, attest_keyless, commands
from gate.notify._status import State
from gate.report._markdown import code, md
from gate.sign import SignatureFormat, Signed
from gate.sigstore import KeylessSigner, identity_of, keyless_signer


def _signer(inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner) -> KeylessSigner:
    signer = keyless_signer(
        token=inputs.identity_token,
        fulcio_url=inputs.fulcio_url,
        rekor_url=inputs.rekor_url,
        signing_config=inputs.signing_config,
        trusted_roots=inputs.trusted_root,
        env=env,
        tsa_url=inputs.tsa_url,
    )
    who = identity_of(signer.certificate().leaf)
    runner.info(f"Keyless: signing as {who.subject} (issuer {who.issuer})")
    return signer


def sign_without_key(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    started = datetime.now(UTC)
    signer = _signer(inputs, env, runner)
    made: list[attest_keyless.Made] = []

    def provenance(pairs: list[tuple[str, str]]) -> None:
        made.append(attest_keyless.make(signer, pairs, env=env, started=started))

    with runner.group(f"Signing {len(inputs.images)} image(s) keylessly"):
        signed = commands.sign(
            ctx,
            inputs.images,
            signer,
            fmt=SignatureFormat.BOTH,
            before_attach=provenance if inputs.provenance else None,
        )
        for item in signed:
            runner.info(f"signed {item.image}")
    plural = "s" if len(signed) != 1 else ""
    outcome = _outcome(signer, f"signed {len(signed)} image{plural}", inputs.images, signed)
    lines = [
        f"### ✅ Sealgate signed {len(signed)} image{plural} without a key",
        *_identity_lines(signer),
        "| Image | Digest | Written |",
        "|---|---|---|",
        *(
            f"| {code(s.image.partition('@')[0])} | {code(s.digest)} | "
            f"{'<br>'.join(code(w) for w in s.written)} |"
            for s in signed
        ),
    ]
    if made:
        lines += _attach_provenance(inputs, runner, ctx, made[0], outcome)
    lines += _rekor_lines(signer)
    outcome.markdown = "\n".join(lines) + "\n"
    return outcome


def attest_without_key(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    started = datetime.now(UTC)
    signer = _signer(inputs, env, runner)  # token and certificate before any registry call
    pairs = attest.resolve_digests(ctx.client, inputs.images)
    made = attest_keyless.make(signer, pairs, env=env, started=started)
    outcome = _outcome(signer, f"provenance attached to {len(pairs)} image(s)", inputs.images, [])
    outcome.outputs["digests"] = json.dumps(
        {text: digest for text, (_, digest) in zip(inputs.images, pairs, strict=True)},
        sort_keys=True,
    )
    lines = [
        f"### ✅ Sealgate attached provenance to {len(pairs)} image(s) without a key",
        *_identity_lines(signer),
    ]
    lines += _attach_provenance(inputs, runner, ctx, made, outcome)
    lines += _rekor_lines(signer)
    outcome.markdown = "\n".join(lines) + "\n"
    return outcome


def _outcome(
    signer: KeylessSigner, what: str, images: Sequence[str], signed: Sequence[Signed]
) -> Outcome:
    who = identity_of(signer.certificate().leaf)
    entries = [logged.url for logged in signer.logged]
    outcome = Outcome(State.SUCCESS, f"✅ {what} as {who.subject}", 0)
    outcome.target_url = entries[0] if entries else None
    outcome.outputs["digests"] = json.dumps(
        {text: s.digest for text, s in zip(images, signed, strict=False)}, sort_keys=True
    )
    outcome.outputs["signer"] = who.subject
    outcome.outputs["rekor-entries"] = "\n".join(entries)
    return outcome


def _identity_lines(signer: KeylessSigner) -> list[str]:
    who = identity_of(signer.certificate().leaf)
    return [
        "",
        f"Identity {code(who.subject)} · issuer {code(who.issuer or '')} · "
        f"Sealgate {md(__version__)}",
        "",
    ]


def _rekor_lines(signer: KeylessSigner) -> list[str]:
    links = ", ".join(f"[{i + 1}]({logged.url})" for i, logged in enumerate(signer.logged))
    return ["", f"Rekor entries: {links}"]


def _attach_provenance(
    inputs: _env.Inputs,
    runner: PlainRunner,
    ctx: commands.Context,
    made: attest_keyless.Made,
    outcome: Outcome,
) -> list[str]:
    with runner.group("SLSA provenance"):
        done = attest_keyless.attach(ctx.client, made, Path(inputs.report_dir))
        for where in done.attached:
            runner.info(f"attached provenance at {where}")
    path = str(Path(inputs.report_dir) / attest.PROVENANCE_FILE)
    outcome.outputs["provenance-path"] = path
    bundle = str(Path(inputs.report_dir) / attest_keyless.BUNDLE_FILE)
    return [
        "",
        "<details><summary>SLSA provenance</summary>",
        "",
        f"- file: {code(path)} (DSSE), {code(bundle)} (Sigstore bundle)",
        *(f"- attached: {code(where)}" for where in done.attached),
        "",
        "</details>",
    ]
