"""Compose files read as ``docker compose`` reads them: interpolation, .env, extends, include.

Where Compose would pull an image nobody can read off the files (an unset
variable, ``${VAR:?}``), the finding has no reference and says why; the gate
turns that into an ERROR result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import ManifestError
from gate.manifests import Finding, Options, find_images
from gate.manifests._interpolate import interpolate, parse_dotenv

ENV = {"TAG": "1.25", "EMPTY": "", "REG": "ghcr.io/acme"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("nginx:${TAG}", "nginx:1.25"),
        ("nginx:$TAG", "nginx:1.25"),
        ("${REG}/api:${TAG}", "ghcr.io/acme/api:1.25"),
        ("nginx:${MISSING:-1.0}", "nginx:1.0"),
        ("nginx:${EMPTY:-1.0}", "nginx:1.0"),  # :- also replaces an empty value
        ("nginx:${EMPTY-1.0}", "nginx:"),  # - only an unset one
        ("nginx:${MISSING-1.0}", "nginx:1.0"),
        ("nginx:${TAG:+9}", "nginx:9"),
        ("nginx:${MISSING:+9}", "nginx:"),
        ("nginx:${MISSING:-${TAG}}", "nginx:1.25"),  # defaults nest
        ("nginx:${TAG:?set TAG}", "nginx:1.25"),
        ("price$$5", "price$5"),
        ("no variables", "no variables"),
    ],
)
def test_interpolation_follows_compose(text: str, value: str) -> None:
    assert interpolate(text, ENV).value == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nginx:${MISSING}", "${MISSING} is not set and has no default"),
        ("nginx:$MISSING", "$MISSING is not set and has no default"),
        ("nginx:${MISSING:?the deploy sets it}", "is required and not set: the deploy sets it"),
        ("nginx:${EMPTY:?}", "${EMPTY} is required and not set"),
        ("nginx:${TAG", "a ${ has no closing }"),
        ("nginx:${1}", "is not followed by a variable name"),
        ("nginx:$-", "is not a valid substitution"),
        ("nginx:${TAG!}", "is not a valid substitution"),
    ],
)
def test_undeterminable_values_say_why(text: str, problem: str) -> None:
    result = interpolate(text, ENV)
    assert result.value is None and result.problem is not None and problem in result.problem


def test_nesting_is_bounded() -> None:
    text = "${A:-" * 500 + "x" + "}" * 500
    result = interpolate(text, {})
    assert result.value is None and result.problem is not None and "nest" in result.problem


def test_dotenv_syntax() -> None:
    text = (
        "# comment\n\nexport A=1\nB = two words # comment\nC='literal ${A}'\n"
        'D="quoted ${A}\\n"\nE=${A}-${B}\nF=\n'
    )
    assert parse_dotenv(text, ".env", {}) == {
        "A": "1",
        "B": "two words",
        "C": "literal ${A}",
        "D": "quoted 1\n",
        "E": "1-two words",
        "F": "",
    }


def test_dotenv_errors_never_quote_the_file() -> None:
    with pytest.raises(ManifestError, match=r"^\.env:2: expected KEY=VALUE$") as info:
        parse_dotenv("A=1\nghp_SECRETSECRETSECRET\n", ".env", {})
    assert "SECRET" not in str(info.value)


def images(path: Path, **options: object) -> list[tuple[int, str, str | None]]:
    found = find_images([str(path)], options=Options(**options))  # type: ignore[arg-type]
    return [(f.location.line, f.context, str(f.reference) if f.reference else None) for f in found]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_env_file_next_to_compose_then_env_file_option_then_environment(tmp_path: Path) -> None:
    compose = write(tmp_path / "app/compose.yaml", "services:\n  web:\n    image: nginx:${TAG}\n")
    write(tmp_path / "app/.env", "TAG=from-dotenv\n")
    write(tmp_path / "prod.env", "TAG=from-env-file\n")
    assert images(compose, environ={}) == [
        (3, "service web", "docker.io/library/nginx:from-dotenv")
    ]
    # --env-file replaces the .env next to the file, as in docker compose
    assert images(compose, environ={}, env_files=(str(tmp_path / "prod.env"),)) == [
        (3, "service web", "docker.io/library/nginx:from-env-file")
    ]
    # and the shell environment wins over both
    assert images(compose, environ={"TAG": "shell"}) == [
        (3, "service web", "docker.io/library/nginx:shell")
    ]
    with pytest.raises(ManifestError, match="no such env file"):
        images(compose, environ={}, env_files=(str(tmp_path / "nope.env"),))


def test_unset_variables_are_findings_that_cannot_be_told(tmp_path: Path) -> None:
    compose = write(
        tmp_path / "compose.yaml",
        "services:\n  a:\n    image: nginx:${TAG}\n  b:\n    image: ${REG:?set REG}/b:1\n"
        "  c:\n    image: redis:7\n",
    )
    found = find_images([str(compose)], options=Options(environ={}))
    assert [(f.location.line, f.reference is None) for f in found] == [
        (3, True),
        (5, True),
        (7, False),
    ]
    assert found[0].problem == "${TAG} is not set and has no default"
    assert found[1].problem == "${REG} is required and not set: set REG"


def test_extends_in_the_same_file_and_from_another(tmp_path: Path) -> None:
    write(
        tmp_path / "common/base.yaml",
        "services:\n  app:\n    image: ghcr.io/acme/app:${TAG:-2.0}\n"
        "  chained:\n    extends: app\n",
    )
    compose = write(
        tmp_path / "compose.yaml",
        "services:\n"
        "  base:\n    image: redis:7\n"
        "  cache:\n    extends: base\n"  # same file, short form
        "  web:\n    extends:\n      file: common/base.yaml\n      service: chained\n"
        "  own:\n    extends: {service: base}\n    image: nginx:1.25\n"  # its own image wins
        "  built:\n    build: .\n",
    )
    found = find_images([str(compose)], options=Options(environ={}))
    rows = [(f.location.file, f.location.line, f.context, str(f.reference)) for f in found]
    assert rows == [
        (str(compose), 3, "service base", "docker.io/library/redis:7"),
        (str(compose), 3, "service cache (extends base)", "docker.io/library/redis:7"),
        (
            f"{tmp_path}/common/base.yaml",
            3,
            "service web (extends chained)",
            "ghcr.io/acme/app:2.0",
        ),
        (str(compose), 12, "service own", "docker.io/library/nginx:1.25"),
    ]


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ("  a:\n    extends: b\n  b:\n    extends: a\n", "extends loops back to service"),
        ("  a:\n    extends: nope\n", "extends service nope, which"),
        (
            "  a:\n    extends: {service: x, file: missing.yaml}\n",
            "names missing.yaml, which does not exist",
        ),
        ("  a:\n    extends: [1]\n", "extends needs a service name"),
    ],
)
def test_bad_extends_are_errors(tmp_path: Path, services: str, message: str) -> None:
    compose = write(tmp_path / "compose.yaml", "services:\n" + services)
    with pytest.raises(ManifestError, match=message):
        find_images([str(compose)], options=Options(environ={}))


def test_include_reads_each_file_as_its_own_project(tmp_path: Path) -> None:
    write(tmp_path / "db/compose.yaml", "services:\n  db:\n    image: postgres:${PG}\n")
    write(tmp_path / "db/.env", "PG=16\n")
    write(tmp_path / "mq/compose.yaml", "services:\n  mq:\n    image: rabbitmq:${MQ}\n")
    write(tmp_path / "mq.env", "MQ=3.13\n")
    compose = write(
        tmp_path / "compose.yaml",
        "include:\n  - db/compose.yaml\n  - path: [mq/compose.yaml]\n    env_file: mq.env\n"
        "services:\n  web:\n    image: nginx:1.25\n",
    )
    rows = [
        (f.location.file, f.context, str(f.reference))
        for f in find_images([str(compose)], options=Options(environ={}))
    ]
    assert rows == [
        (f"{tmp_path}/db/compose.yaml", "service db", "docker.io/library/postgres:16"),
        (f"{tmp_path}/mq/compose.yaml", "service mq", "docker.io/library/rabbitmq:3.13"),
        (str(compose), "service web", "docker.io/library/nginx:1.25"),
    ]
    # the including project's variables win over the included file's .env
    parent = images(compose, environ={"PG": "15"})
    assert parent[0][2] == "docker.io/library/postgres:15"


def test_include_loops_and_unknown_paths_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: [b.yaml]\n")
    write(tmp_path / "b.yaml", "include: [a.yaml]\n")
    with pytest.raises(ManifestError, match="include loops back"):
        find_images([str(tmp_path / "a.yaml")], options=Options(environ={}))
    write(tmp_path / "c.yaml", "include: ['${WHERE}/x.yaml']\n")
    with pytest.raises(ManifestError, match="cannot tell which file this names"):
        find_images([str(tmp_path / "c.yaml")], options=Options(environ={}))


def test_extends_and_include_do_not_follow_links(tmp_path: Path) -> None:
    write(tmp_path / "real.yaml", "services:\n  x:\n    image: x:1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/link.yaml").symlink_to(tmp_path / "real.yaml")
    compose = write(tmp_path / "sub/compose.yaml", "include: [link.yaml]\n")
    with pytest.raises(ManifestError, match="is a symbolic link"):
        find_images([str(compose)], options=Options(environ={}))
    assert images(compose, environ={}, follow_symlinks=True)[0][2] == "docker.io/library/x:1"


def test_dockerfile_images_a_build_pulls(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path / "Dockerfile",
        "ARG GO=1.22\nARG BASE\nFROM golang:${GO} AS build\n"
        "COPY --from=ghcr.io/acme/assets:3 /a /a\n"
        "RUN --mount=type=bind,from=busybox:1.36,target=/b true\n"
        "FROM ${BASE}\nCOPY --from=build /x /x\n",
    )
    found: list[Finding] = find_images([str(dockerfile)])
    assert [(f.location.line, str(f.reference) if f.reference else None) for f in found] == [
        (3, "docker.io/library/golang:1.22"),
        (4, "ghcr.io/acme/assets:3"),
        (5, "docker.io/library/busybox:1.36"),
        (6, None),
    ]
    assert found[3].problem is not None and "${BASE}" in found[3].problem


def test_variables_never_echo_secrets_into_errors_or_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-" + "s3cr3t" * 6
    monkeypatch.setenv("SEALGATE_REGISTRY_PASSWORD", secret)
    monkeypatch.setenv("DEPLOY_TOKEN", f"not a reference {secret}")
    compose = write(
        tmp_path / "compose.yaml",
        "services:\n  a:\n    image: ghcr.io/x/${SEALGATE_REGISTRY_PASSWORD}\n",
    )
    (found,) = find_images([str(compose)])
    assert found.reference is None  # Sealgate's own settings are not Compose variables
    assert found.problem == "${SEALGATE_REGISTRY_PAS… is not set and has no default"
    compose.write_text("services:\n  a:\n    image: ghcr.io/x:${DEPLOY_TOKEN}\n")
    with pytest.raises(ManifestError) as info:
        find_images([str(compose)])
    assert info.value.message.endswith(
        "'ghcr.io/x:${DEPLOY_TOKE…' is not an image reference once its variables are substituted"
    )
    assert "hunter2" not in info.value.message


def test_a_gitlab_ci_file_with_include_is_not_compose(tmp_path: Path) -> None:
    gitlab = write(
        tmp_path / ".gitlab-ci.yml",
        "include:\n  - local: /templates/build.yml\n  - '/templates/x.yml'\n"
        "stages: [build]\nbuild:\n  script: [make]\n",
    )
    assert find_images([str(gitlab)]) == []
    only_include = write(tmp_path / "compose.yaml", "name: app\ninclude: [other.yaml]\nx-y: 1\n")
    write(tmp_path / "other.yaml", "services:\n  o:\n    image: o:1\n")
    assert images(only_include, environ={}) == [(3, "service o", "docker.io/library/o:1")]
