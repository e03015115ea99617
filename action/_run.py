"""Each action command: the same library calls as the CLI, then what the runner shows.

Returns an ``Outcome`` (state, one-line description, exit code, markdown,
outputs); ``action.__init__`` turns it into the step summary, outputs and the
commit status. Nothing here prints a secret: keys are read by reference
(``env://SEALGATE_KEY``) and registry passwords only reach the registry client.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from action import _env
from action._outcome import Outcome
from action._workflow import GitHubRunner, PlainRunner
from gate import __version__, attest, commands, keys
from gate.notify._status import State
from gate.policy import Policy
from gate.report import OutputFormat, ReportContext, counted, prepare_dir, render, summary_line
from gate.report._markdown import code, md
from gate.result import Result, fails
from gate.usecase import Checked, Checker, Reporting

if TYPE_CHECKING:
    from gate.sigstore import KeylessSigner


def run(inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner) -> Outcome:
    """Dispatch on ``inputs.command``; raises SealgateError for bad input or registries."""
    options = commands.RegistryOptions(
        inputs.insecure_registries,
        None,
        inputs.registry_username,
        inputs.registry_password,
        registry=inputs.registry,
    )
    if inputs.command in ("sign", "attest"):
        options = options.for_images(inputs.images)
    options.check()
    ctx = commands.Context(options)
    handler = {
        "sign": _sign,
        "attest": _attest,
        "verify": _verify,
        "gate": _gate,
        "pin-check": _pin_check,
    }[inputs.command]
    if _writes_reports(inputs, runner):
        prepare_dir(Path(inputs.report_dir))  # a bad directory stops us before any push
    outcome = handler(inputs, env, runner, ctx)
    outcome.outputs.setdefault("report-dir", inputs.report_dir)
    return outcome


def _writes_reports(inputs: _env.Inputs, runner: PlainRunner) -> bool:
    """Whether this step writes into the report directory (reports, provenance or dotenv)."""
    if not isinstance(runner, GitHubRunner):
        return True  # the dotenv of outputs goes there
    return inputs.command in ("verify", "gate", "attest") or (
        inputs.command == "sign" and inputs.provenance
    )


def _key(inputs: _env.Inputs, env: Mapping[str, str]) -> keys.PrivateKey:
    assert inputs.key is not None
    return keys.load_private_key(inputs.key, _env.key_password(env))


def _sign(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    if inputs.keyless:
        from action._keyless import sign_without_key

        return sign_without_key(inputs, env, runner, ctx)
    key = _key(inputs, env)
    started = datetime.now(UTC)
    runner.info(f"Signing key {key.public_key.short_id} ({key.public_key.algorithm})")
    with runner.group(f"Signing {counted(len(inputs.images), 'image')}"):
        signed = commands.sign(ctx, inputs.images, key)
        for item in signed:
            runner.info(f"signed {item.image}")
            for where in item.written:
                runner.info(f"  wrote {where}")
    pairs = [(s.image, s.digest) for s in signed]
    digests = {text: s.digest for text, s in zip(inputs.images, signed, strict=False)}
    outcome = Outcome(State.SUCCESS, _signed_line(len(signed), inputs.provenance), 0)
    outcome.outputs["digests"] = json.dumps(digests, sort_keys=True)
    lines = [
        f"### ✅ Sealgate signed {len(signed)} image{'s' if len(signed) != 1 else ''}",
        "",
        f"Key `{key.public_key.short_id}` · Sealgate {md(__version__)}",
        "",
        "| Image | Digest | Written |",
        "|---|---|---|",
        *(
            f"| {code(s.image.partition('@')[0])} | {code(s.digest)} | "
            f"{'<br>'.join(code(w) for w in s.written)} |"
            for s in signed
        ),
    ]
    if inputs.provenance:
        lines += _provenance(inputs, env, runner, ctx, key, pairs, started, outcome)
    outcome.markdown = "\n".join(lines) + "\n"
    return outcome


def _attest(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    if inputs.keyless:
        from action._keyless import attest_without_key

        return attest_without_key(inputs, env, runner, ctx)
    key = _key(inputs, env)
    started = datetime.now(UTC)
    pairs = attest.resolve_digests(ctx.client, inputs.images)
    outcome = Outcome(State.SUCCESS, f"✅ provenance attached to {counted(len(pairs), 'image')}", 0)
    outcome.outputs["digests"] = json.dumps(
        {text: digest for text, (_, digest) in zip(inputs.images, pairs, strict=True)},
        sort_keys=True,
    )
    lines = [f"### ✅ Sealgate attached provenance to {counted(len(pairs), 'image')}", ""]
    lines += _provenance(inputs, env, runner, ctx, key, pairs, started, outcome)
    outcome.markdown = "\n".join(lines) + "\n"
    return outcome


def _provenance(
    inputs: _env.Inputs,
    env: Mapping[str, str],
    runner: PlainRunner,
    ctx: commands.Context,
    key: keys.PrivateKey,
    pairs: Sequence[tuple[str, str]],
    started: datetime,
    outcome: Outcome,
) -> list[str]:
    with runner.group("SLSA provenance"):
        made = attest.provenance(
            ctx.client, pairs, key, env=env, directory=Path(inputs.report_dir), started=started
        )
        for where in made.attached:
            runner.info(f"attached provenance at {where}")
    path = str(Path(inputs.report_dir) / attest.PROVENANCE_FILE)
    runner.info(f"wrote {path}")
    outcome.outputs["provenance-path"] = path
    predicate = made.statement.predicate
    builder = predicate.get("runDetails", {}).get("builder", {}).get("id", "")
    build_type = predicate.get("buildDefinition", {}).get("buildType", "")
    return [
        "",
        "<details><summary>SLSA provenance</summary>",
        "",
        f"- file: {code(path)} (DSSE, signed by `{key.public_key.short_id}`)",
        f"- builder: {code(builder)}",
        f"- build type: {code(build_type)}",
        *(f"- attached: {code(where)}" for where in made.attached),
        "",
        "</details>",
    ]


def _vsa_signer(
    inputs: _env.Inputs, env: Mapping[str, str], pol: Policy
) -> keys.PrivateKey | KeylessSigner | None:
    """gate: the key input, or (``keyless: true``) the job's identity, certified when signing."""
    if inputs.command != "gate":
        return None
    if inputs.key:
        return _key(inputs, env)
    if not inputs.keyless_vsa:
        return None
    from gate.sigstore import keyless_signer

    return keyless_signer(
        token=inputs.identity_token,
        fulcio_url=inputs.fulcio_url,
        rekor_url=inputs.rekor_url,
        signing_config=inputs.signing_config,
        trusted_roots=inputs.trusted_root or pol.trust_roots,
        env=env,
        tsa_url=inputs.tsa_url,
        certify_now=False,
    )


def _checker(
    inputs: _env.Inputs, env: Mapping[str, str], ctx: commands.Context, pol: Policy
) -> Checker:
    """The same use case the CLI runs; the Action always keeps reports for the artifacts."""
    reporting = Reporting(
        directory=Path(inputs.report_dir),
        signing_key=_vsa_signer(inputs, env, pol),
        fail_on=inputs.fail_on,
        context=ReportContext(
            policy=inputs.policy, run_url=_run_url(env), source_url=_source_url(env)
        ),
        env=env,
    )
    return Checker(ctx, pol, reporting)


def _verify(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    pol = commands.load_policy(inputs.policy, inputs.public_keys)
    checker = _checker(inputs, env, ctx, pol)
    with runner.group(f"Verifying {counted(len(inputs.images), 'image')}"):
        checked = checker.verify(inputs.images, attestations=inputs.attestations)
        _log_results(checked.results, runner)
    return _judged(checked, runner)


def _gate(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    from gate import policy

    assert inputs.policy is not None
    checker = _checker(inputs, env, ctx, policy.load(inputs.policy))
    with runner.group(f"Checking images in {counted(len(inputs.manifests), 'manifest path')}"):
        checked = checker.gate(inputs.manifests)
        _log_results(checked.results, runner)
    outcome = _judged(checked, runner)
    summary = checked.summary
    if summary is not None:
        path = str(Path(inputs.report_dir) / summary.path.name)
        outcome.outputs["vsa-path"] = path
        if summary.rekor_url:
            how = f"signed as {code(summary.signer or '')}, [Rekor entry]({summary.rekor_url})"
            outcome.outputs["rekor-entries"] = summary.rekor_url
            outcome.outputs["signer"] = summary.signer or ""
        elif summary.signed:
            how = f"signed by `{summary.signer}`"
        else:
            how = "unsigned: no key given"
        verdict = "PASSED" if summary.passed else "FAILED"
        outcome.markdown += f"\nVerification summary (SLSA VSA, {verdict}): {code(path)} ({how})\n"
    return outcome


def _pin_check(
    inputs: _env.Inputs, env: Mapping[str, str], runner: PlainRunner, ctx: commands.Context
) -> Outcome:
    from gate import manifests

    client = ctx.client
    changes = manifests.pin_files(
        inputs.manifests,
        lambda ref: client.get_manifest(ref.repository, ref.identifier).digest,
        check=True,
    )
    for change in changes:
        runner.error(
            f"{change.old} is not pinned; pin it as {change.new}",
            file=_relative(change.location.file),
            line=change.location.line,
            title="Sealgate: unpinned image",
        )
    if not changes:
        line = "✅ every image reference is pinned by digest"
        return Outcome(State.SUCCESS, line, 0, f"### {line}\n")
    line = f"❌ {counted(len(changes), 'image reference')} not pinned by digest"
    rows = [
        f"| {code(_relative(c.location.file))}:{c.location.line} | {code(c.old)} | {code(c.new)} |"
        for c in changes
    ]
    table = "| Where | Reference | Pinned |\n|---|---|---|\n" + "\n".join(rows)
    hint = "\n\nRun `sealgate pin` on these files to pin them.\n"
    return Outcome(State.FAILURE, line, 1, f"### {line}\n\n{table}{hint}")


def _judged(checked: Checked, runner: PlainRunner) -> Outcome:
    """Annotations and the verdict shared by ``verify`` and ``gate`` (reports are written)."""
    results, report_ctx = checked.results, checked.report
    for result in results:
        if not fails(result.status, checked.fail_on, unsupported_denied=result.unsupported_denied):
            continue
        message = f"{result.image}: {result.reason}"
        title = f"Sealgate: {result.status.value}"
        for place in result.sources or [None]:
            if place is None:
                runner.error(message, title=title)
            else:
                runner.error(message, file=_relative(place.file), line=place.line, title=title)
    code_ = checked.exit_code
    state = State.SUCCESS if code_ == 0 else State.ERROR if code_ == 3 else State.FAILURE
    digests = {r.image: r.digest for r in results if r.digest}
    return Outcome(
        state,
        summary_line(results, report_ctx),
        code_,
        render(results, OutputFormat.MARKDOWN, report_ctx),
        {"digests": json.dumps(digests, sort_keys=True)},
    )


def _log_results(results: Sequence[Result], runner: PlainRunner) -> None:
    for r in results:
        runner.info(f"{r.status.value:<11} {r.image} {r.digest or '-'}: {r.reason}")


def _signed_line(count: int, provenance: bool) -> str:
    noun = "image" if count == 1 else "images"
    return f"✅ signed {count} {noun}" + (" with SLSA provenance" if provenance else "")


def _relative(path: str) -> str:
    """Annotations need paths from the repository root; the workspace is the cwd."""
    workspace = os.getcwd()
    if os.path.isabs(path) and path.startswith(workspace + os.sep):
        return os.path.relpath(path, workspace)
    return path.removeprefix("./")


def _run_url(env: Mapping[str, str]) -> str | None:
    from gate.notify._github import run_url

    return run_url(env) or env.get("CI_JOB_URL") or None


def _source_url(env: Mapping[str, str]) -> str | None:
    server, repo, sha = (
        env.get(n) for n in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA")
    )
    if server and repo and sha:
        return f"{server.rstrip('/')}/{repo}/blob/{sha}"
    if env.get("CI_PROJECT_URL") and env.get("CI_COMMIT_SHA"):
        return f"{env['CI_PROJECT_URL']}/-/blob/{env['CI_COMMIT_SHA']}"
    return None
