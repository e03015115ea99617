"""Pull secrets: the small Kubernetes API client, secret parsing, and binding to hosts.

The API is ``tests/servers/kubernetes_api.py`` on loopback (HTTPS, its own CA,
bearer token, objects and Status errors from the official client's models).
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.admission._kube import KubeAPI, KubeError
from gate.admission._pull import PullSecretError, PullSecrets, docker_config, secret_names
from gate.credentials import Credentials
from gate.errors import UsageError
from gate.registry import RegistryClient
from tests.servers.kubernetes_api import KubernetesAPI, docker_config_json

JSON_TYPE = "kubernetes.io/dockerconfigjson"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubernetesAPI]:
    server = KubernetesAPI().start(tmp_path / "api")
    server.add_secret(
        "shop", "regcred", docker_config_json("ghcr.io", "bot", "s3cr3t-pw"), JSON_TYPE
    )
    server.add_service_account("shop", "builder", ["regcred"])
    server.forbidden.add("vault")
    yield server
    server.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_kubeconfig_with_inline_ca_and_token_reads_a_secret(
    api: KubernetesAPI, tmp_path: Path
) -> None:
    client = KubeAPI.from_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    try:
        secret = client.secret("shop", "regcred")
        assert secret["kind"] == "Secret" and secret["type"] == JSON_TYPE
        assert client.service_account("shop", "builder")["imagePullSecrets"] == [
            {"name": "regcred"}
        ]
        assert "s3cr3t" not in repr(client) and api.token not in repr(client)
    finally:
        client.close()
    assert api.requests[-1].authorized


@pytest.mark.parametrize(
    ("namespace", "code", "says"),
    [
        ("nowhere", 404, "secret nowhere/regcred does not exist"),
        ("vault", 403, "the webhook may not read secret vault/regcred (403 Forbidden)"),
    ],
)
def test_api_errors_are_one_sentence_with_the_status_code(
    api: KubernetesAPI, tmp_path: Path, namespace: str, code: int, says: str
) -> None:
    client = KubeAPI.from_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    with pytest.raises(KubeError) as caught:
        client.secret(namespace, "regcred")
    client.close()
    assert caught.value.code == code
    assert caught.value.message.startswith(says)


def test_a_wrong_token_a_wrong_ca_and_no_server_are_clear_errors(
    api: KubernetesAPI, tmp_path: Path
) -> None:
    wrong = KubeAPI.from_kubeconfig(api.kubeconfig(tmp_path / "k1", token="not-it"))
    with pytest.raises(KubeError, match=r"did not accept the webhook's credentials \(401"):
        wrong.secret("shop", "regcred")
    wrong.close()
    config = yaml.safe_load(api.kubeconfig(tmp_path / "k2").read_text())
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    assert api.ca is not None
    (tmp_path / "api-ca.crt").write_bytes(api.ca.bundle.read_bytes())
    config["clusters"][0]["cluster"]["certificate-authority"] = "api-ca.crt"
    (tmp_path / "k2").write_text(yaml.safe_dump(config))
    relative = KubeAPI.from_kubeconfig(tmp_path / "k2")  # relative to the kubeconfig's folder
    assert relative.secret("shop", "regcred")["kind"] == "Secret"
    relative.close()
    config["clusters"][0]["cluster"]["certificate-authority"] = "/etc/ssl/certs/ca-certificates.crt"
    (tmp_path / "k4").write_text(yaml.safe_dump(config))
    untrusted = KubeAPI.from_kubeconfig(tmp_path / "k4")
    with pytest.raises(KubeError, match="no trusted TLS connection to the Kubernetes API"):
        untrusted.secret("shop", "regcred")
    untrusted.close()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{_closed_port()}"
    (tmp_path / "k5").write_text(yaml.safe_dump(config))
    gone = KubeAPI.from_kubeconfig(tmp_path / "k5")
    with pytest.raises(KubeError, match="is unreachable") as caught:
        gone.secret("shop", "regcred")
    assert caught.value.code is None
    gone.close()


def test_a_slow_api_server_cannot_hold_a_request_past_its_budget(
    api: KubernetesAPI, tmp_path: Path
) -> None:
    """Per-read timeouts alone let a server that sends a byte a second hold an admission
    request for as long as the Secret is long; the API's share of the budget ends it."""
    api.drip = 0.25  # a Secret of a few hundred bytes: a minute or more at this pace
    client = KubeAPI.from_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    try:
        with pytest.raises(KubeError, match=r"did not answer within 1 s") as caught:
            client.secret("shop", "regcred", budget=1.0)
        assert "s3cr3t" not in caught.value.message
        pulls = PullSecrets(client, Credentials(), lambda c: _Client(c))  # type: ignore[arg-type,return-value]
        pod = {"spec": {"containers": [{"name": "a", "image": "ghcr.io/x/y:1"}],
                        "imagePullSecrets": [{"name": "regcred"}]}}  # fmt: skip
        access = pulls.access("shop", pod, "Pod")
        assert access.error is not None and "did not answer within" in access.error
        api.drip = 0.0
        assert client.secret("shop", "regcred")["kind"] == "Secret"  # the pool recovers
    finally:
        client.close()


def test_in_cluster_reads_the_service_account_files_and_a_rotated_token(
    api: KubernetesAPI, tmp_path: Path
) -> None:
    base = api.service_account_dir(tmp_path / "sa")
    client = KubeAPI.in_cluster(base, env=api.env)
    assert client.secret("shop", "regcred")["kind"] == "Secret"
    api.token = "rotated-token"
    (base / "token").write_text("rotated-token\n")  # the kubelet rewrites it in place
    assert client.secret("shop", "regcred")["kind"] == "Secret"
    client.close()
    with pytest.raises(UsageError, match="KUBERNETES_SERVICE_HOST"):
        KubeAPI.in_cluster(base, env={})
    with pytest.raises(UsageError, match=r"token does not exist; mount the service-account"):
        KubeAPI.in_cluster(tmp_path / "empty", env=api.env)
    v6 = KubeAPI.in_cluster(base, env={"KUBERNETES_SERVICE_HOST": "fd00::1",
                                       "KUBERNETES_SERVICE_PORT": "443"})  # fmt: skip
    assert v6.server == "https://[fd00::1]:443"


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ({"exec": {"command": "aws"}}, "authenticates with an exec plugin"),
        ({"auth-provider": {"name": "gcp"}}, "authenticates with an auth-provider plugin"),
    ],
)
def test_kubeconfig_plugins_are_refused_not_skipped(
    tmp_path: Path, user: dict[str, Any], says: str
) -> None:
    config = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    with pytest.raises(UsageError, match=says):
        KubeAPI.from_kubeconfig(tmp_path / "kubeconfig")
    with pytest.raises(UsageError, match="no context named 'other'"):
        KubeAPI.from_kubeconfig(tmp_path / "kubeconfig", "other")
    with pytest.raises(UsageError, match="cannot read the kubeconfig"):
        KubeAPI.from_kubeconfig(tmp_path / "missing")


def test_the_pod_spec_is_found_in_pods_templates_and_cron_jobs() -> None:
    spec = {"containers": [{"name": "a", "image": "x"}],
            "imagePullSecrets": [{"name": "one"}, {"name": "two"}, {"name": "one"}],
            "serviceAccountName": "builder"}  # fmt: skip
    assert secret_names({"kind": "Pod", "spec": spec}) == (("one", "two"), "builder", True)
    deployment = {"kind": "Deployment", "spec": {"template": {"spec": spec}}}
    assert secret_names(deployment)[0] == ("one", "two")
    cron = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    assert secret_names(cron)[0] == ("one", "two")
    assert secret_names({"kind": "ConfigMap", "data": {}}) == ((), None, False)


def _secret(kind: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {"type": kind, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def test_both_docker_secret_types_are_read_and_others_are_refused_by_name() -> None:
    data = docker_config_json("ghcr.io", "bot", "pw")
    config = docker_config(_secret(JSON_TYPE, data), "secret a/b")
    assert config.auths_for("ghcr.io") == ("bot", "pw")
    legacy = {".dockercfg": json.dumps(json.loads(data[".dockerconfigjson"])["auths"]).encode()}
    assert docker_config(_secret("kubernetes.io/dockercfg", legacy), "s").auths_for("ghcr.io") == (
        "bot",
        "pw",
    )
    cases = [
        (_secret("Opaque", {"password": b"pw"}), "secret a/b is of type Opaque"),
        (_secret(JSON_TYPE, {}), "secret a/b has no .dockerconfigjson key"),
        (_secret(JSON_TYPE, {".dockerconfigjson": b"{not json"}), "is not base64 of JSON"),
        (_secret(JSON_TYPE, {".dockerconfigjson": b"{}"}), "has no 'auths' object"),
        (_secret(JSON_TYPE, {".dockerconfigjson": b"[]"}), "has no 'auths' object"),
        (_secret(JSON_TYPE, {".dockerconfigjson": b'{"auths": []}'}), "has no 'auths' object"),
        ({"type": JSON_TYPE, "data": ["pw"]}, "secret a/b has no .dockerconfigjson key"),
        (
            _secret(
                JSON_TYPE, {".dockerconfigjson": b'{"auths": {"h": {"auth": "bm9jb2xvbg=="}}}'}
            ),
            "secret a/b (auths['h']): the 'auth' value has no ':'",
        ),
    ]
    for secret, says in cases:
        with pytest.raises(PullSecretError) as caught:
            docker_config(secret, "secret a/b")
        assert says in str(caught.value)
        assert "pw" not in str(caught.value)


def test_pull_secret_credentials_are_bound_to_their_host_and_come_first() -> None:
    config = docker_config(_secret(JSON_TYPE, docker_config_json("ghcr.io", "bot", "pw")), "s")
    base = Credentials(username="ci", password="ci-pw", registry="127.0.0.1:5000")
    pod = Credentials(username="ci", password="ci-pw", registry="127.0.0.1:5000",
                      pull_secrets=(config,))  # fmt: skip
    assert pod.for_registry("ghcr.io") == ("bot", "pw")
    assert pod.for_registry("ghcr.io.evil.example") is None
    assert pod.for_registry("evil.example") is None
    assert pod.for_registry("127.0.0.1:5000") == base.for_registry("127.0.0.1:5000")
    assert "pw" not in repr(pod)


class _Client:
    """Stands in for a RegistryClient: counts how many were made."""

    made = 0

    def __init__(self, credentials: Credentials) -> None:
        type(self).made += 1
        self.credentials = credentials

    def close(self) -> None:
        pass


def _pull(api: KubernetesAPI, tmp_path: Path) -> PullSecrets:
    kube = KubeAPI.from_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))

    def make(credentials: Credentials) -> RegistryClient:
        return _Client(credentials)  # type: ignore[return-value]

    return PullSecrets(kube, Credentials(), make)


def test_access_scopes_verdicts_by_the_credentials_a_pod_holds_for_a_host(
    api: KubernetesAPI, tmp_path: Path
) -> None:
    api.add_secret("team", "same", docker_config_json("ghcr.io", "bot", "s3cr3t-pw"), JSON_TYPE)
    api.add_secret("team", "other", docker_config_json("ghcr.io", "bot", "another"), JSON_TYPE)
    pulls = _pull(api, tmp_path)
    spec = {"containers": [{"name": "a", "image": "ghcr.io/x/y:1"}]}

    def access(namespace: str, *names: str, kind: str = "Pod") -> Any:
        pod = {"spec": {**spec, "imagePullSecrets": [{"name": n} for n in names]}}
        return pulls.access(namespace, pod, kind)

    shop, team_same, team_other = (
        access("shop", "regcred"),
        access("team", "same"),
        access("team", "other"),
    )
    assert shop.error is None and shop.scope("ghcr.io") is not None
    assert shop.scope("ghcr.io") == team_same.scope("ghcr.io")  # same credentials: shared
    assert shop.scope("ghcr.io") != team_other.scope("ghcr.io")
    assert shop.scope("docker.io") is None  # no entry for that host: the webhook's own
    assert "s3cr3t" not in (shop.scope("ghcr.io") or "") and "s3cr3t" not in repr(shop)
    assert access("shop").scope("ghcr.io") is None  # a Pod without secrets
    assert shop.client is team_same.client and shop.client is not team_other.client
    made = _Client.made
    assert access("shop", "regcred").client is shop.client and _Client.made == made
    # A workload template without secrets gets its service account's.
    deployment = {"spec": {"template": {"spec": {**spec, "serviceAccountName": "builder"}}}}
    assert pulls.access("shop", deployment, "Deployment").scope("ghcr.io") == shop.scope("ghcr.io")
    assert pulls.access("shop", {"spec": {"template": {"spec": spec}}}, "Deployment").secrets == ()
    # Errors are values, never exceptions.
    assert access("vault", "regcred").error == (
        "its imagePullSecrets cannot be used: the webhook may not read secret vault/regcred "
        "(403 Forbidden): grant its service account 'get' on secrets "
        "(`admission manifests --pull-secrets`)"
    )
    (tmp_path / "again").mkdir()
    fresh = _pull(api, tmp_path / "again")
    api.stop()
    assert access("shop", "regcred").error is None  # read secrets are reused for a while
    gone = fresh.access("shop", {"spec": {**spec, "imagePullSecrets": [{"name": "x"}]}}, "Pod")
    assert gone.error is not None and "is unreachable" in gone.error
    pulls.close()
    fresh.close()


@pytest.mark.parametrize(
    ("namespace", "secret", "account"),
    [
        ("shop", ".", None),  # .../secrets/. is .../secrets/: LIST every secret in shop
        ("shop", "..", None),  # .../secrets/.. is the Namespace object
        ("shop", "Reg_Cred", None),
        ("shop", None, "."),
        ("..", "regcred", None),  # a review POSTed to the webhook directly
    ],
)
def test_names_that_are_not_object_names_are_refused_before_any_request(
    api: KubernetesAPI,
    tmp_path: Path,
    namespace: str,
    secret: str | None,
    account: str | None,
) -> None:
    """The API server does not validate imagePullSecrets names, and HTTP clients resolve
    ``.`` and ``..`` segments: such a name must not turn a GET of one secret into a
    LIST of a namespace's secrets or a read of another object."""
    pulls = _pull(api, tmp_path)
    spec: dict[str, Any] = {"containers": [{"name": "a", "image": "ghcr.io/x/y:1"}]}
    if secret is not None:
        spec["imagePullSecrets"] = [{"name": secret}]
    if account is not None:
        spec["serviceAccountName"] = account
    before = len(api.requests)
    kind = "Pod" if secret is not None else "Deployment"
    obj = {"spec": spec} if kind == "Pod" else {"spec": {"template": {"spec": spec}}}
    access = pulls.access(namespace, obj, kind)
    pulls.close()
    assert access.error is not None and "is not a" in access.error, access.error
    assert len(api.requests) == before


def test_a_server_url_with_credentials_in_it_is_refused_without_echoing_them(
    api: KubernetesAPI, tmp_path: Path
) -> None:
    """The server URL is logged at start and named in every API error; a password written
    into it (https://admin:PW@host) would go to both, and to any proxy log."""
    config = yaml.safe_load(api.kubeconfig(tmp_path / "kubeconfig").read_text())
    config["clusters"][0]["cluster"]["server"] = api.url.replace("://", "://admin:hunter2-pw@")
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    with pytest.raises(UsageError) as caught:
        KubeAPI.from_kubeconfig(tmp_path / "kubeconfig")
    assert "user name or password" in caught.value.message
    assert "hunter2" not in caught.value.message


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_tls_verify_is_honoured_only_as_kubectl_does_and_said_aloud(
    api: KubernetesAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The token goes to whoever answers when TLS is not verified: only a YAML ``true``
    turns it off, never beside a CA (kubectl refuses that too), and the log says so."""
    config = yaml.safe_load(api.kubeconfig(tmp_path / "kubeconfig").read_text())
    cluster = config["clusters"][0]["cluster"]
    cluster["insecure-skip-tls-verify"] = True
    (tmp_path / "with-ca").write_text(yaml.safe_dump(config))
    with pytest.raises(UsageError, match="both a certificate authority and insecure-skip"):
        KubeAPI.from_kubeconfig(tmp_path / "with-ca")
    del cluster["certificate-authority-data"]
    (tmp_path / "insecure").write_text(yaml.safe_dump(config))
    with caplog.at_level("WARNING", logger="gate.admission"):
        client = KubeAPI.from_kubeconfig(tmp_path / "insecure")
    try:
        assert client.secret("shop", "regcred")["kind"] == "Secret"
    finally:
        client.close()
    assert "does not verify the Kubernetes API's TLS certificate" in caplog.text
    assert api.token not in caplog.text
    cluster["insecure-skip-tls-verify"] = "true"  # a string is not the boolean: verified
    (tmp_path / "string").write_text(yaml.safe_dump(config))
    strict = KubeAPI.from_kubeconfig(tmp_path / "string")
    with pytest.raises(KubeError, match="no trusted TLS connection"):
        strict.secret("shop", "regcred")
    strict.close()
