"""Merkle tree hashing and proofs exactly as RFC 6962 / RFC 9162 define them (pure).

The ledger keeps one hash per *perfect* subtree (a node at ``level`` covering
leaves ``[index * 2**level, (index + 1) * 2**level)``); every hash a proof needs
is either such a node or the root of an incomplete right edge, which is folded
from O(log n) perfect nodes. So proof functions take a ``NodeGetter`` and work
the same over an in-memory list or an SQLite table.

NOTE: RFC 9162 §2.1.1 (MTH), §2.1.3 (inclusion), §2.1.4 (consistency);
https://www.rfc-editor.org/rfc/rfc9162#section-2.1
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() (RFC 9162 §2.1.1)."""

NodeGetter = Callable[[int, int], bytes]
"""``get(level, index)`` returns the hash of a perfect subtree; level 0 are leaf hashes."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data); the prefix keeps a leaf from posing as a node (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True)
class CompactRange:
    """The roots of the perfect subtrees that make up leaves ``[0, size)``, largest first.

    One hash per set bit of ``size``, so an append touches O(log n) hashes and
    the root is a fold of at most 64 of them; this is the "frontier" a log
    keeps instead of recomputing the tree.
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a compact range of size {self.size} needs {self.size.bit_count()} hashes"
            )

    def append(self, leaf: bytes) -> tuple[CompactRange, list[tuple[int, int, bytes]]]:
        """Add one leaf hash; return the new range and every perfect node that came into being."""
        stack = list(self.hashes)
        level, index, current = 0, self.size, leaf
        created = [(0, index, current)]
        while index & 1:
            current = node_hash(stack.pop(), current)
            level, index = level + 1, index >> 1
            created.append((level, index, current))
        stack.append(current)
        return CompactRange(self.size + 1, tuple(stack)), created

    def root(self) -> bytes:
        """MTH of leaves ``[0, size)``: fold right to left, as the RFC's recursion does."""
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = node_hash(left, result)
        return result

    @classmethod
    def at(cls, size: int, get: NodeGetter) -> CompactRange:
        """The range for ``size`` leaves, read from stored perfect nodes."""
        hashes, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                hashes.append(get(level, start >> level))
                start += 1 << level
        return cls(size, tuple(hashes))


def subtree_hash(start: int, end: int, get: NodeGetter) -> bytes:
    """MTH(D[start:end]) for a range the RFC recursion produces (``start`` aligned to it).

    A perfect aligned range is one stored node; otherwise it is a perfect left
    part of size k and a smaller right remainder, folded from the right.
    """
    parts, position = [], start
    while position < end:
        level = (end - position).bit_length() - 1
        parts.append(get(level, position >> level))
        position += 1 << level
    result = parts[-1]
    for left in reversed(parts[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_path(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    siblings: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            siblings.append(subtree_hash(start + k, end, get))
            end = start + k
        else:
            siblings.append(subtree_hash(start, start + k, get))
            start += k
    return siblings[::-1]


def consistency_path(old_size: int, new_size: int, get: NodeGetter) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (SUBPROOF with b = true); empty when m is 0 or n."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(subtree_hash(start + k, end, get))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, get))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(subtree_hash(start, end, get))
    return proof[::-1]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof implies, or None when the proof has the wrong shape.

    NOTE: the verification steps of RFC 9162 §2.1.3.2, numbered as there.
    """
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):  # step 1
        return None
    fn, sn, r = index, size - 1, leaf  # steps 2, 3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            return None
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c
    return r if sn == 0 else None  # step 5 (sn)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` with ``root``."""
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether the tree (new_size, new_root) extends (old_size, old_root).

    NOTE: the verification steps of RFC 9162 §2.1.4.2, numbered as there; the
    trivial cases (old size 0, equal sizes) need an empty proof.
    """
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == 0:
        return not proof
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:  # step 1
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: first is a power of 2
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c
    return fr == old_root and sr == new_root and sn == 0  # step 7


# ---------------------------------------------------------------- in-memory helpers


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect node of a tree of leaf hashes: ``levels[l][i]`` is node (l, i)."""
    result = [list(leaves)]
    while len(result[-1]) > 1:
        below = result[-1]
        result.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return result


def getter(tree: list[list[bytes]]) -> NodeGetter:
    """A NodeGetter over ``levels()`` output."""
    return lambda level, index: tree[level][index]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 §2.1.1), in O(n) hashes and O(log n) memory."""
    compact = CompactRange()
    for leaf in leaves:
        compact, _ = compact.append(leaf)
    return compact.root()


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[len(leaves)]) over leaf hashes held in memory."""
    return inclusion_path(index, len(leaves), getter(levels(leaves)))


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[len(leaves)]) over leaf hashes held in memory."""
    return consistency_path(old_size, len(leaves), getter(levels(leaves)))
