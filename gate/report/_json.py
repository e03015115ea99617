"""``-o json``: one array, one object per result, exactly ``Result.to_dict()``.

DESIGN.md's command-line contract fixes the keys and their order; this module
only serialises, so the contract lives in one place (``gate.result``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from gate.result import Result


def render_json(results: Sequence[Result]) -> str:
    """Indented JSON with the keys in contract order (not sorted), ending in a newline."""
    data = [result.to_dict() for result in results]
    return json.dumps(data, indent=2, ensure_ascii=False, default=_default) + "\n"


def _default(value: Any) -> Any:
    """Make source-specific ``extra`` values JSON: times as ISO 8601, collections as lists."""
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
