"""``-o json`` against its JSON Schema (gate/report/result.schema.json); the README against it.

The integration suite validates real ``gate`` output against the same schema
(tests/integration/test_gate.py); here the renderer's output for every status,
index children, local images and hostile text.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from importlib import resources
from typing import Any

import jsonschema
import pytest

from gate.report import OutputFormat, render
from gate.result import Result, Status
from tests.conftest import ROOT
from tests.unit.test_report import local_result, make_results


def schema() -> dict[str, Any]:
    text = resources.files("gate.report").joinpath("result.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def validate(data: Any) -> None:
    checker = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    checker.validate(data)


def test_the_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_rendered_json_matches_the_schema() -> None:
    results = [*make_results(), local_result()]
    results.append(Result("x", None, Status.ERROR, "policy broken", extra={"fault": "policy"}))
    validate(json.loads(render(results, OutputFormat.JSON)))
    validate(json.loads(render([], OutputFormat.JSON)))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": "OK"}, "an unknown status"),
        ({"surprise": 1}, "an undocumented key"),
        ({"signer": {"key_id": "ab"}}, "a signer without its name key"),
        ({"digest": "not a digest"}, "a malformed digest"),
    ],
)
def test_the_schema_rejects_drift(change: dict[str, Any], why: str) -> None:
    data = json.loads(render(make_results()[:1], OutputFormat.JSON))
    data[0].update(change)
    with pytest.raises(jsonschema.ValidationError):
        validate(data)


def test_an_undocumented_extra_is_caught() -> None:
    result = replace(make_results()[0], extra={"new_thing": True})
    with pytest.raises(jsonschema.ValidationError, match="new_thing"):
        validate(json.loads(render([result], OutputFormat.JSON)))


def test_readme_names_every_key_the_schema_has() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    start = readme.index("`-o json` prints one array")
    paragraph = readme[start : readme.index("\n\n", start)]
    shape = paragraph[: paragraph.index("Some keys appear")]
    optional_text = paragraph[paragraph.index("Some keys appear") :]
    result = schema()["$defs"]["result"]
    signer = result["properties"]["signer"]["oneOf"][1]
    source = result["properties"]["sources"]["items"]
    quoted = set(re.findall(r'"(\w+)"', shape))
    assert quoted == set(result["required"]) | set(signer["required"]) | set(source["required"])
    optional = set(re.findall(r"`(\w+)`", optional_text)) - {"signer"}  # "adds … to `signer`"
    expected = (set(result["properties"]) - set(result["required"])) | (
        set(signer["properties"]) - set(signer["required"])
    )
    assert optional == expected
