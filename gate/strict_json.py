"""JSON as a verifier must read it: no duplicate keys, bounded nesting, one error type.

Everything a registry, an archive or a signer hands us is parsed here before
any field is believed. Python's ``json`` keeps the *last* of two duplicate
keys while other parsers keep the first, which is how two verifiers come to
disagree about one document; a document nested thousands deep raises
``RecursionError``. Both become the caller's own error class, with one sentence.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gate.errors import SealgateError

MAX_DEPTH = 64
"""Deeper than any manifest, statement or bundle a real tool writes."""


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key '{key[:40]}'")
        out[key] = value
    return out


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _depth(data: bytes | str) -> int:
    """The deepest ``[``/``{`` nesting outside strings, counted without recursion."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(
    data: bytes | str,
    what: str,
    error: type[SealgateError],
    *,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``data``; ``error(one sentence)`` if it is not strict, shallow JSON.

    ``what`` names the document in the message ("the .sig manifest of …").
    """
    if _depth(data) > max_depth:
        raise error(f"{what} is JSON nested more than {max_depth} levels deep; refusing it")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates)
    except DuplicateKeyError as e:
        raise error(f"{what} is ambiguous JSON ({e}); refusing it") from e
    except (ValueError, RecursionError) as e:
        raise error(f"{what} is not JSON") from e


def loads_object(
    data: bytes | str, what: str, error: type[SealgateError], *, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """``loads`` for documents that must be a JSON object."""
    parsed = loads(data, what, error, max_depth=max_depth)
    if not isinstance(parsed, dict):
        raise error(f"{what} is not a JSON object")
    return parsed
