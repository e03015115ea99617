"""JSON as a verifier must read it: no duplicate keys, bounded nesting, one error type.

Everything a registry, an archive or a signer hands us is parsed here before
any field is believed. Python's ``json`` keeps the *last* of two duplicate
keys while other parsers keep the first, which is how two verifiers come to
disagree about one document; a document nested thousands deep raises
``RecursionError``. Both become the caller's own error class, with one sentence.
"""

from __future__ import annotations

import json
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
            raise DuplicateKeyError(f"the key '{key[:40]}' appears twice in one object")
        out[key] = value
    return out


def _depth(value: Any) -> int:
    """The deepest nesting of a parsed document, walked with a stack (linear, no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        children = list(item.values()) if isinstance(item, dict) else item
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
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
    try:
        parsed = json.loads(data, object_pairs_hook=_no_duplicates)
    except DuplicateKeyError as e:
        raise error(f"{what} is ambiguous JSON ({e}); refusing it") from e
    except RecursionError as e:
        raise error(f"{what} is JSON nested more than {max_depth} levels deep; refusing it") from e
    except ValueError as e:
        raise error(f"{what} is not JSON") from e
    # NOTE: json's C scanner recurses per level, so nesting past the interpreter's limit is
    # the RecursionError above; anything it did parse is walked here, in linear time.
    if _depth(parsed) > max_depth:
        raise error(f"{what} is JSON nested more than {max_depth} levels deep; refusing it")
    return parsed


def loads_object(
    data: bytes | str, what: str, error: type[SealgateError], *, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """``loads`` for documents that must be a JSON object."""
    parsed = loads(data, what, error, max_depth=max_depth)
    if not isinstance(parsed, dict):
        raise error(f"{what} is not a JSON object")
    return parsed
