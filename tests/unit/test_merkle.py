"""RFC 6962 / RFC 9162 hashing and proofs, against published vectors and the RFC's own recursion.

Vectors: transparency-dev/merkle (the Go library behind Trillian, Tessera and
the Go sumdb), ``testonly/constants.go`` (leaf inputs, node and root hashes)
and ``proof/verify_test.go`` (inclusion and consistency proofs; leaf indices
there are 1-based). The same roots appear in certificate-transparency-go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from gate import merkle

LEAF_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]

# testonly/constants.go RootHashes(), indexed by tree size 1..8.
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# testonly/constants.go NodeHashes(): level 0 (leaf hashes) and level 1.
LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
LEVEL_1 = [
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
]

# proof/verify_test.go inclusionProofs: (0-based leaf index, tree size, path).
INCLUSION = [
    (0, 1, []),
    (0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
]  # fmt: skip

# proof/verify_test.go consistencyProofs: (size1, size2, proof).
CONSISTENCY = [
    (1, 1, []),
    (1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
    (6, 7, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
]  # fmt: skip

HASHES = [merkle.leaf_hash(data) for data in LEAF_INPUTS]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(hexes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# ---------------------------------------------------------------- the RFC's recursion, verbatim


def mth(d: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf hashes (leaf hashing done by the caller)."""
    if not d:
        return merkle.EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return merkle.node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


# ---------------------------------------------------------------- vectors


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert merkle.CompactRange().root() == merkle.EMPTY_ROOT


def test_leaf_and_node_hashes_match_vectors() -> None:
    assert [x.hex() for x in HASHES] == LEAF_HASHES
    assert [merkle.node_hash(HASHES[i], HASHES[i + 1]).hex() for i in range(0, 8, 2)] == LEVEL_1


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_vectors(size: int) -> None:
    assert merkle.root(HASHES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_proofs_match_vectors(index: int, size: int, expected: list[str]) -> None:
    proof = merkle.inclusion_proof(index, HASHES[:size])
    assert [p.hex() for p in proof] == expected
    root = bytes.fromhex(ROOTS[size - 1])
    assert merkle.verify_inclusion(index, size, HASHES[index], h(expected), root)


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_consistency_proofs_match_vectors(old: int, new: int, expected: list[str]) -> None:
    assert [p.hex() for p in merkle.consistency_proof(old, HASHES[:new])] == expected
    old_root, new_root = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    assert merkle.verify_consistency(old, new, old_root, new_root, h(expected))


# ---------------------------------------------------------------- every index, sizes 1..50


@pytest.mark.parametrize("size", range(1, 51))
def test_inclusion_for_every_index(size: int) -> None:
    d = leaves(size)
    tree = merkle.levels(d)
    root = mth(d)
    assert merkle.root(d) == root
    for m in range(size):
        proof = merkle.inclusion_path(m, size, merkle.getter(tree))
        assert proof == path(m, d)
        assert merkle.verify_inclusion(m, size, d[m], proof, root)
        assert not merkle.verify_inclusion(m, size, d[(m + 1) % size], proof, root) or size == 1
        if size > 1:
            assert not merkle.verify_inclusion((m + 1) % size, size, d[m], proof, root)
            assert not merkle.verify_inclusion(m, size, d[m], [*proof, root], root)


@pytest.mark.parametrize("new", range(1, 51))
def test_consistency_for_every_old_size(new: int) -> None:
    d = leaves(new)
    get = merkle.getter(merkle.levels(d))
    new_root = mth(d)
    for old in range(0, new + 1):
        proof = merkle.consistency_path(old, new, get)
        assert proof == ([] if old == 0 else subproof(old, d, True))
        old_root = mth(d[:old])
        assert merkle.verify_consistency(old, new, old_root, new_root, proof)
        if 0 < old < new:
            assert not merkle.verify_consistency(old, new, new_root, new_root, proof)
            assert not merkle.verify_consistency(old, new, old_root, SOME_HASH, proof)
            assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])


def test_compact_range_tracks_roots_and_stored_nodes() -> None:
    d = leaves(37)
    tree = merkle.levels(d)
    compact = merkle.CompactRange()
    for i, leaf in enumerate(d):
        compact, created = compact.append(leaf)
        assert compact.root() == mth(d[: i + 1])
        for level, index, value in created:
            assert tree[level][index] == value
        assert merkle.CompactRange.at(i + 1, merkle.getter(tree)) == compact


# ------------------------------------------------ corrupted proofs (verify_test.go's probes)


def test_corrupted_inclusion_proofs_fail() -> None:
    for index, size, expected in INCLUSION[1:]:
        proof, root, leaf = h(expected), bytes.fromhex(ROOTS[size - 1]), HASHES[index]
        probes = [
            (index - 1, size, root, leaf, proof),
            (index + 1, size, root, leaf, proof),
            (index ^ 2, size, root, leaf, proof),
            (index, size * 2, root, leaf, proof),
            (index, size // 2, root, leaf, proof),
            (index, size, root, b"WrongLeaf", proof),
            (index, size, merkle.EMPTY_ROOT, leaf, proof),
            (index, size, SOME_HASH, leaf, proof),
            (index, size, root, leaf, [*proof, b""]),
            (index, size, root, leaf, [*proof, root]),
            (index, size, root, leaf, [b"", *proof]),
            (index, size, root, leaf, [root, *proof]),
            (index, size, root, leaf, proof[:-1]),
        ]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
            probes.append((index, size, root, leaf, flipped))
        for p_index, p_size, p_root, p_leaf, p_proof in probes:
            assert not merkle.verify_inclusion(p_index, p_size, p_leaf, p_proof, p_root)


def test_corrupted_consistency_proofs_fail() -> None:
    for old, new, expected in CONSISTENCY[1:]:
        proof = h(expected)
        r1, r2 = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
        probes = [
            (old - 1, new, r1, r2, proof),
            (old + 1, new, r1, r2, proof),
            (old ^ 2, new, r1, r2, proof),
            (old, new * 2, r1, r2, proof),
            (old, new // 2, r1, r2, proof),
            (old, new, b"WrongRoot", r2, proof),
            (old, new, r1, b"WrongRoot", proof),
            (old, new, r2, r1, proof),
            (old, new, r1, r2, []),
            (old, new, r1, r2, [*proof, b""]),
            (old, new, r1, r2, [*proof, r1]),
            (old, new, r1, r2, [*proof, r2]),
            (old, new, r1, r2, [b"", *proof]),
            (old, new, r1, r2, [r1, *proof]),
            (old, new, r1, r2, [r2, *proof]),
            (old, new, r1, r2, [proof[0], *proof]),
            (old, new, r1, r2, proof[:-1]),
        ]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
            probes.append((old, new, r1, r2, flipped))
        for s1, s2, p1, p2, p in probes:
            assert not merkle.verify_consistency(s1, s2, p1, p2, p), (old, new, s1, s2)


def test_trivial_consistency_cases() -> None:
    root = merkle.EMPTY_ROOT
    assert merkle.verify_consistency(0, 0, root, root, [])
    assert merkle.verify_consistency(0, 5, root, SOME_HASH, [])
    assert not merkle.verify_consistency(0, 5, root, SOME_HASH, [root])
    assert merkle.verify_consistency(3, 3, SOME_HASH, SOME_HASH, [])
    assert not merkle.verify_consistency(3, 3, SOME_HASH, root, [])
    assert not merkle.verify_consistency(3, 3, SOME_HASH, SOME_HASH, [root])
    assert not merkle.verify_consistency(2, 1, SOME_HASH, SOME_HASH, [])


def test_out_of_range_requests_are_refused() -> None:
    get = merkle.getter(merkle.levels(leaves(4)))
    with pytest.raises(ValueError):
        merkle.inclusion_path(4, 4, get)
    with pytest.raises(ValueError):
        merkle.consistency_path(5, 4, get)
    assert not merkle.verify_inclusion(0, 0, SOME_HASH, [], SOME_HASH)
    assert not merkle.verify_inclusion(1, 1, SOME_HASH, [], SOME_HASH)
