"""Directory manifests: canonical encoding and validation."""

from __future__ import annotations

import json

import pytest

from shipyard.blobs import MANIFEST_FORMAT, Manifest, ManifestEntry
from shipyard.errors import InvalidArgumentError

D1 = "1" * 64
D2 = "2" * 64


def _entries() -> list[ManifestEntry]:
    return [
        ManifestEntry("b/z.txt", 3, D1),
        ManifestEntry("a.txt", 10, D2, 0o755),
        ManifestEntry("b/a.txt", 0, D1),
        ManifestEntry("é.txt", 1, D2),
    ]


def test_canonical_encoding_is_exact() -> None:
    """The encoding is sorted-key, whitespace-free UTF-8 JSON with entries sorted by path."""
    manifest = Manifest((ManifestEntry("é/x", 3, D1, 0o755), ManifestEntry("a", 0, D2)))
    assert (
        manifest.to_bytes()
        == (
            '{"entries":[{"digest":"' + D2 + '","mode":420,"path":"a","size":0},'
            '{"digest":"' + D1 + '","mode":493,"path":"é/x","size":3}],'
            '"format":"shipyard.manifest/1"}'
        ).encode()
    )


def test_entry_order_does_not_change_the_digest() -> None:
    """Entries given in any order encode to the same bytes and digest."""
    entries = _entries()
    forward = Manifest(tuple(entries))
    backward = Manifest(tuple(reversed(entries)))
    assert forward == backward
    assert forward.to_bytes() == backward.to_bytes()
    assert forward.digest() == backward.digest()


def test_round_trip_through_bytes() -> None:
    """from_bytes(to_bytes()) gives back an equal manifest and identical bytes."""
    manifest = Manifest(tuple(_entries()))
    again = Manifest.from_bytes(manifest.to_bytes())
    assert again == manifest
    assert again.to_bytes() == manifest.to_bytes()
    assert again.total_size == 14
    assert len(again) == 4
    assert again.entries[0].executable


def _doc(**entry: object) -> bytes:
    base: dict[str, object] = {"path": "a", "size": 1, "digest": D1, "mode": 0o644}
    base.update(entry)
    return json.dumps({"format": MANIFEST_FORMAT, "entries": [base]}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"not json",
        b"[]",
        b'{"format":"other/1","entries":[]}',
        json.dumps({"format": MANIFEST_FORMAT}).encode(),
        json.dumps({"format": MANIFEST_FORMAT, "entries": [], "extra": 1}).encode(),
        json.dumps({"format": MANIFEST_FORMAT, "entries": ["a"]}).encode(),
        _doc(path="../escape"),
        _doc(path="/abs"),
        _doc(path="a//b"),
        _doc(path="a/./b"),
        _doc(path="a\\b"),
        _doc(path=""),
        _doc(size=-1),
        _doc(size=True),
        _doc(size="1"),
        _doc(digest="xyz"),
        _doc(mode=0o777),
        _doc(extra=1),
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    """from_bytes raises InvalidArgumentError for anything but a valid manifest."""
    with pytest.raises(InvalidArgumentError, match="manifest"):
        Manifest.from_bytes(data)


def test_duplicate_paths_are_refused() -> None:
    """Two entries with one path raise InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="duplicates"):
        Manifest((ManifestEntry("a", 1, D1), ManifestEntry("a", 1, D2)))


def test_a_path_cannot_be_both_file_and_folder() -> None:
    """An entry that is the parent folder of another raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="as a file and as the directory"):
        Manifest((ManifestEntry("a", 1, D1), ManifestEntry("a/b", 1, D2)))


def test_manifest_is_frozen() -> None:
    """Manifests and entries cannot be changed after construction."""
    manifest = Manifest(tuple(_entries()))
    with pytest.raises(AttributeError):
        manifest.entries = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        manifest.entries[0].size = 5  # type: ignore[misc]
