"""Safe YAML for deploy manifests: a small node graph with positions, built from parser events.

PyYAML's composers recurse once per nesting level (the C one crashes the whole
process on deep input) and its constructor expands aliases into Python objects,
which is what makes "billion laughs" documents dangerous. So we compose the
event stream ourselves: iteratively, one document at a time, with a nesting
cap, and with aliases kept as shared nodes whose expanded size is counted, not
built. A file whose expanded size dwarfs its real size is refused before
anything walks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
)

from gate.errors import ManifestError

# NOTE: libyaml's parser is a state machine with an explicit stack (no recursion);
# only the composers recurse. Its events are safe to consume, and ~20x faster.
_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 200
"""Deeper than any real manifest; stopping early also cuts libyaml's quadratic flow-key scan."""
MIN_EXPANSION_BUDGET = 1_000_000
"""Aliases may expand a file to this many nodes, or EXPANSION_FACTOR times its real node count."""
EXPANSION_FACTOR = 4
MERGE_KEY = "<<"
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""Bytes that were not UTF-8 (kept by surrogateescape); YAML must be Unicode."""


@dataclass(frozen=True, slots=True, eq=False)
class Scalar:
    """A scalar as written: its value, quoting style, and where it ends in the text."""

    value: str
    style: str | None
    """``'`` or ``"`` when quoted, ``|`` or ``>`` for block scalars, None when plain."""
    line: int
    """1-based line of the node (its anchor or tag, if any, else the value)."""
    start: int
    end: int
    """Character offsets of the node in the text, anchor/tag and quotes included."""


@dataclass(frozen=True, slots=True, eq=False)
class Sequence:
    items: tuple[Node, ...]
    line: int
    size: int
    """Nodes a full alias expansion of this subtree would hold."""


@dataclass(frozen=True, slots=True, eq=False)
class Mapping:
    pairs: tuple[tuple[Node, Node], ...]
    line: int
    size: int


Node = Scalar | Sequence | Mapping


@dataclass
class _Open:
    """A collection being composed."""

    start: CollectionStartEvent
    children: list[Node] = field(default_factory=list)
    size: int = 1


def compose_all(text: str, file: str) -> Iterator[Node]:
    """Each document in ``text`` as a node graph (aliases are shared nodes), one at a time.

    Raises ManifestError for invalid YAML, undefined or recursive aliases,
    nesting deeper than MAX_DEPTH, and alias expansion over budget (a YAML bomb).
    """
    stray = _NOT_UTF8.search(text)
    if stray is not None:
        at = text.count("\n", 0, stray.start()) + 1
        raise ManifestError("not valid YAML: the text is not UTF-8", file=file, line=at)
    line: int | None
    try:
        yield from _Composer(file).run(yaml.parse(text, Loader=_PARSER))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid syntax"
        line = mark.line + 1 if mark else None
        raise ManifestError(f"not valid YAML: {problem}", file=file, line=line) from e
    except yaml.YAMLError as e:
        position = getattr(e, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ManifestError(f"not valid YAML: {first}", file=file, line=line) from e


class _Composer:
    def __init__(self, file: str) -> None:
        self.file = file
        self.anchors: dict[str, Node | _Open] = {}
        self.stack: list[_Open] = []
        self.root: Node | None = None
        self.distinct = 0
        self.expanded = 0

    def run(self, events: Iterable[Event]) -> Iterator[Node]:
        for event in events:
            if isinstance(event, DocumentStartEvent):
                # NOTE: YAML 1.1 §3.2.2.2: anchors are scoped to one document.
                self.anchors.clear()
                self.root = None
            elif isinstance(event, DocumentEndEvent):
                if self.root is not None:
                    yield self.root
                self.root = None
            elif isinstance(event, AliasEvent):
                self._alias(event)
            elif isinstance(event, ScalarEvent):
                node = Scalar(
                    event.value,
                    event.style or None,
                    event.start_mark.line + 1,
                    event.start_mark.index,
                    event.end_mark.index,
                )
                self._count(1, node.line, new=True)
                self._anchor(event.anchor, node)
                self._add(node, 1)
            elif isinstance(event, CollectionStartEvent):
                self._start(event)
            elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                self._end()

    def _anchor(self, anchor: str | None, node: Node | _Open) -> None:
        if anchor is not None:
            self.anchors[anchor] = node

    def _alias(self, event: AliasEvent) -> None:
        line = event.start_mark.line + 1
        node = self.anchors.get(event.anchor)
        if node is None:
            raise ManifestError(
                f"not valid YAML: alias *{event.anchor} names no anchor before it",
                file=self.file,
                line=line,
            )
        if isinstance(node, _Open):
            raise ManifestError(
                f"not valid YAML: alias *{event.anchor} refers to a node that contains it",
                file=self.file,
                line=line,
            )
        size = 1 if isinstance(node, Scalar) else node.size
        self._count(size, line, new=False)
        self._add(node, size)

    def _start(self, event: CollectionStartEvent) -> None:
        line = event.start_mark.line + 1
        if len(self.stack) >= MAX_DEPTH:
            raise ManifestError(
                f"nested more than {MAX_DEPTH} levels deep (possible YAML bomb)",
                file=self.file,
                line=line,
            )
        self._count(1, line, new=True)
        frame = _Open(event)
        self._anchor(event.anchor, frame)
        self.stack.append(frame)

    def _end(self) -> None:
        frame = self.stack.pop()
        line = frame.start.start_mark.line + 1
        node: Node
        if isinstance(frame.start, MappingStartEvent):
            children = frame.children
            pairs = tuple(zip(children[::2], children[1::2], strict=True))
            node = Mapping(pairs, line, frame.size)
        else:
            node = Sequence(tuple(frame.children), line, frame.size)
        if frame.start.anchor is not None and self.anchors.get(frame.start.anchor) is frame:
            self.anchors[frame.start.anchor] = node
        self._add(node, frame.size)

    def _count(self, size: int, line: int, *, new: bool) -> None:
        """Count what a full expansion would hold: one per new node, a subtree per alias."""
        self.distinct += new
        self.expanded += size
        if self.expanded > max(MIN_EXPANSION_BUDGET, EXPANSION_FACTOR * self.distinct):
            raise ManifestError(
                "too many aliases/nodes (possible YAML bomb): aliases expand to over "
                f"{self.expanded:,} nodes",
                file=self.file,
                line=line,
            )

    def _add(self, node: Node, size: int) -> None:
        """Attach a finished node to its parent, whose expanded size grows by ``size``."""
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        frame.children.append(node)
        frame.size += size


# -- reading the graph ------------------------------------------------------------------------


def scalar(node: Node | None) -> str | None:
    """The text of a scalar node; None for anything else (or a missing node)."""
    return node.value if isinstance(node, Scalar) else None


def is_null(node: Node | None) -> bool:
    """YAML null written as nothing, ``~`` or ``null`` (plain only: ``"null"`` is a string)."""
    return node is None or (
        isinstance(node, Scalar)
        and node.style is None
        and node.value in ("", "~", "null", "Null", "NULL")
    )


def items(mapping: Mapping) -> Iterator[tuple[str, Node]]:
    """Pairs with scalar keys, merge keys (``<<: *base``) applied, explicit keys first."""
    seen: set[str] = set()
    merged: list[Mapping] = []
    for key, value in mapping.pairs:
        if not isinstance(key, Scalar):
            continue
        if key.value == MERGE_KEY and key.style is None:
            sources = value.items if isinstance(value, Sequence) else (value,)
            merged.extend(s for s in sources if isinstance(s, Mapping))
        else:
            seen.add(key.value)
            yield key.value, value
    for source in merged:
        for name, value in items(source):
            if name not in seen:
                seen.add(name)
                yield name, value


def first(mapping: Node | None, key: str) -> Node | None:
    """The first value under ``key``, or None; for labels, where a duplicate does no harm."""
    if not isinstance(mapping, Mapping):
        return None
    return next((value for name, value in items(mapping) if name == key), None)


def get(mapping: Node | None, key: str, *, file: str) -> Node | None:
    """The value under ``key`` (merge keys applied); a key written twice is an error, not a guess.

    Deployers disagree on which duplicate wins, so the gate refuses to pick one.
    """
    if not isinstance(mapping, Mapping):
        return None
    found: Node | None = None
    for name, value in items(mapping):
        if name != key:
            continue
        if found is not None and found is not value:
            raise ManifestError(
                f"key '{key}' appears twice in one mapping; which one is deployed is unclear",
                file=file,
                line=value.line,
            )
        found = value
    return found


def value_span(text: str, node: Scalar) -> tuple[int, int] | None:
    """Character offsets of the scalar's value as written, or None if it is not written verbatim.

    Anchors and tags before the value are outside the span; quotes are too. A
    scalar with escapes, line folding or block style has no verbatim span.
    """
    end = node.end
    if node.style in ("'", '"'):
        end -= 1
        if text[end : end + 1] != node.style:
            return None
        start = end - len(node.value)
        if text[start - 1 : start] != node.style:
            return None
    elif node.style is None:
        start = end - len(node.value)
    else:
        return None
    if start < node.start or text[start:end] != node.value:
        return None
    return start, end
