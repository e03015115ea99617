"""Structure of what deploy/ ships for the watchdog: the Grafana dashboard and the compose file.

No Grafana or compose runs here, so these check what each would rely on; the
dashboard's queries themselves run against a real InfluxDB in
tests/integration/test_influx.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from gate import refs
from gate.notify._influx import MEASUREMENT

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "sealgate.json").read_text())
    return data


def test_dashboard_is_importable_grafana_json() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] == "sealgate-watchdog" and board["title"]
    assert board["id"] is None  # so import creates it rather than overwriting a stranger's
    [source] = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_INFLUXDB",
        "datasource",
        "influxdb",
    )
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["datasource"] == {"type": "influxdb", "uid": "${DS_INFLUXDB}"}
        for target in panel["targets"]:
            assert target["rawQuery"] is True and target["refId"]
            assert f'FROM "{MEASUREMENT}"' in target["query"]
            assert "$timeFilter" in target["query"]


def test_dashboard_has_the_three_panels_the_watchdog_promises() -> None:
    by_title = {p["title"]: p for p in dashboard()["panels"]}
    table = by_title["Latest status per container"]
    assert table["type"] == "table" and table["targets"][0]["resultFormat"] == "table"
    assert re.search(
        r'GROUP BY "host", "container_name", "image", "status"', table["targets"][0]["query"]
    )
    failed = by_title["Failed verifications"]
    assert 'sum("failed")' in failed["targets"][0]["query"]
    assert "GROUP BY time($__interval)" in failed["targets"][0]["query"]
    assert "latency_ms" in by_title["Verification latency"]["targets"][0]["query"]


def test_failed_panel_alerts_on_any_failure() -> None:
    failed = next(p for p in dashboard()["panels"] if p["title"] == "Failed verifications")
    alert = failed["alert"]
    [condition] = alert["conditions"]
    assert condition["query"]["params"][0] == failed["targets"][0]["refId"]
    assert condition["evaluator"] == {"type": "gt", "params": [0]}
    assert alert["frequency"] and alert["name"]
    # Legacy alert queries cannot use template variables.
    assert "$host" not in failed["targets"][0]["query"]


def test_host_variable_lists_hosts_from_the_measurement() -> None:
    [variable] = dashboard()["templating"]["list"]
    assert variable["name"] == "host" and variable["allValue"] == ".*"
    assert variable["query"] == f'SHOW TAG VALUES FROM "{MEASUREMENT}" WITH KEY = "host"'


def test_compose_runs_the_watchdog_as_a_locked_down_sidecar() -> None:
    compose = yaml.safe_load((DEPLOY / "watchdog" / "compose.yaml").read_text())
    watch = compose["services"]["watch"]
    image = refs.parse(watch["image"])
    assert image.pinned and image.path.endswith("/sealgate")
    assert watch["command"][0] == "watch"
    flags = {arg.split("=", 1)[0] for arg in watch["command"][1:]}
    assert {"--policy", "--interval", "--alert-file", "--influx-file", "--metrics-addr"} <= flags
    # no URL, token or password on the command line or in the environment: files in /run/secrets
    assert not flags & {"--alert", "--influx"}
    for arg in watch["command"][1:]:
        if arg.startswith(("--alert-file", "--influx-file")):
            assert arg.split("=", 1)[1].removeprefix("/run/secrets/") in watch["secrets"]
    assert set(watch["secrets"]) <= set(compose["secrets"])
    assert all(
        v.startswith("/run/secrets/")
        for k, v in watch["environment"].items()
        if k.endswith("_FILE")
    )
    assert not {"SEALGATE_INFLUX_TOKEN", "SEALGATE_WEBHOOK_SECRET"} & set(watch["environment"])
    assert next(a for a in watch["command"] if a.startswith("--metrics-addr=")).startswith(
        "--metrics-addr=127.0.0.1:"
    )
    # the command is one the real `sealgate` parser accepts, run by the CLI entry point of the image
    from gate.cli import build_parser

    argv = [re.sub(r"\$\{[^}]*\}", "x", arg) for arg in watch["command"]]
    assert build_parser().parse_args(argv).command == "watch"
    assert watch["entrypoint"] == ["/opt/sealgate/bin/sealgate"]
    assert "/opt/sealgate" in (DEPLOY.parent / "Dockerfile").read_text()
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in watch["volumes"]
    assert watch["read_only"] is True
    assert "no-new-privileges:true" in watch["security_opt"]
    assert watch["cap_drop"] == ["ALL"]
    assert watch["network_mode"] in ("host", "none")
    assert "SEALGATE_INFLUX_TOKEN_FILE" in watch["environment"]
    state = next(v for v in watch["volumes"] if v.startswith("sealgate-state:"))
    assert state.split(":")[1] == watch["environment"]["SEALGATE_STATE_DIR"].rsplit("/", 1)[0]
    assert "sealgate-state" in compose["volumes"]
