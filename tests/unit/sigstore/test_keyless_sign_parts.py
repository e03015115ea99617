"""The parts of keyless signing that need no server: tokens, endpoints, policy init."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gate.errors import UsageError
from gate.policy_init import from_github
from gate.sigstore._endpoints import endpoints
from gate.sigstore._oidc import obtain, parse_token
from gate.sigstore._sign import PUBLIC_GOOD

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(**claims: object) -> str:
    now = int(time.time())
    body = {"iss": "https://issuer.test", "sub": "me", "aud": "sigstore", "iat": now,
            "exp": now + 300} | claims  # fmt: skip
    return jwt.encode(body, KEY, algorithm="RS256")


def test_token_claims_and_repr_hides_the_secret() -> None:
    raw = token(email="dev@example.test")
    parsed = parse_token(raw)
    assert (parsed.issuer, parsed.subject) == ("https://issuer.test", "dev@example.test")
    assert raw not in repr(parsed) and raw not in str(parsed)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        # claims, not tokens: a token made at collection would expire before a long run gets here
        ({"aud": "other"}, "audience"),
        ({"aud": ["a", "b"]}, "audience"),
        ({"exp": -1}, "expired"),
        ({"nbf": 3600}, "not valid yet"),
        ({"iss": ""}, "'iss' or 'sub'"),
        ("not-a-jwt", "not a JWT"),
        ("a.!!!.c", "base64url"),
    ],
)
def test_bad_tokens_are_one_sentence(raw: str | dict[str, object], words: str) -> None:
    if isinstance(raw, dict):
        now = int(time.time())
        raw = token(**{k: now + v if k in ("exp", "nbf") else v for k, v in raw.items()})  # type: ignore[operator]
    with pytest.raises(UsageError, match=words):
        parse_token(raw)


def test_token_sources_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    explicit, env_token = token(sub="flag"), token(sub="env")
    assert obtain(explicit, {"SIGSTORE_ID_TOKEN": env_token}).subject == "flag"
    assert obtain(None, {"SIGSTORE_ID_TOKEN": env_token}).subject == "env"
    with pytest.raises(UsageError, match="id-token: write"):
        obtain(None, {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/x"})
    assert capsys.readouterr().out == ""  # masked only on GitHub Actions
    obtain(None, {"SIGSTORE_ID_TOKEN": env_token, "GITHUB_ACTIONS": "true"})
    assert capsys.readouterr().out == f"::add-mask::{env_token}\n"


def test_endpoints_flags_file_defaults(tmp_path: Path) -> None:
    assert endpoints(None, None, None) == PUBLIC_GOOD
    config = tmp_path / "signing.json"
    config.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [{"url": "https://fulcio.corp/", "majorApiVersion": 1}],
                "rekorTlogUrls": [
                    {"url": "https://rekor2.corp", "majorApiVersion": 2},
                    {"url": "https://rekor.corp", "majorApiVersion": 1},
                ],
                "tsaUrls": [{"url": "https://tsa.corp/api/v1/timestamp", "majorApiVersion": 1}],
            }
        )
    )
    got = endpoints(None, None, str(config))  # the highest Rekor API version wins
    assert (got.fulcio, got.rekor, got.rekor_version) == (
        "https://fulcio.corp",
        "https://rekor2.corp",
        2,
    )
    assert got.tsa == "https://tsa.corp/api/v1/timestamp"
    assert endpoints(None, "http://127.0.0.1:2", str(config)).rekor_version == 2
    doc = json.loads(config.read_text())
    doc["tsaUrls"] = []
    config.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="Rekor v2 records no signing time"):
        endpoints(None, None, str(config))
    assert endpoints(None, None, str(config), "http://127.0.0.1:3/ts").rekor_version == 2
    doc["rekorTlogUrls"] = doc["rekorTlogUrls"][1:]
    config.write_text(json.dumps(doc))
    got = endpoints(None, None, str(config))
    assert (got.rekor, got.rekor_version, got.tsa) == ("https://rekor.corp", 1, None)
    doc["rekorTlogUrls"] = ["https://rekor.v01"]  # v0.1 configs: bare URLs are v1
    config.write_text(json.dumps(doc))
    assert endpoints(None, None, str(config)).rekor == "https://rekor.v01"
    with pytest.raises(UsageError, match="timestamp authority URL"):
        endpoints(None, None, None, "ftp://t")

    assert endpoints("http://127.0.0.1:1", None, str(config)).fulcio == "http://127.0.0.1:1"
    with pytest.raises(UsageError, match="not an http"):
        endpoints("ftp://x", None, None)
    config.write_text('{"caUrls": []}')
    with pytest.raises(UsageError, match="names no Fulcio"):
        endpoints(None, None, str(config))
    with pytest.raises(UsageError, match="cannot read the signing config"):
        endpoints(None, None, str(tmp_path / "missing.json"))


def test_policy_init_subjects() -> None:
    exact = from_github("acme/app/release.yml")
    assert (
        "subject: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
        in exact
    )
    assert "issuer: https://token.actions.githubusercontent.com" in exact
    anyflow = from_github("acme/app", "refs/tags/v*")
    assert (
        r"subject_regex: '^https://github\.com/acme/app/\.github/workflows/[^/@]+@refs/tags/v[^@]*$'"
        in anyflow
    )
    for bad in ("acme", "acme/app/x/y", "acme/a b"):
        with pytest.raises(UsageError, match="OWNER/REPO"):
            from_github(bad)
    with pytest.raises(UsageError, match="full git ref"):
        from_github("acme/app", "main")


def test_sign_keyless_refuses_local_images_before_any_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gate.cli import main

    closed = "http://127.0.0.1:9"  # reaching it would be exit 3, "unreachable"
    code = main(["sign", "docker://app:1", "--keyless", "--identity-token", token(),
                 "--fulcio-url", closed, "--rekor-url", closed])  # fmt: skip
    assert code == 2
    assert "keyless signing signs registry images" in capsys.readouterr().err
    assert main(["sign", "127.0.0.1:1/a:1", "--key", "k.pem", "--keyless"]) == 2
    assert "exactly one of --key KEY or --keyless" in capsys.readouterr().err
    assert main(["sign", "127.0.0.1:1/a:1"]) == 2
