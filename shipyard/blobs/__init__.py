"""Content-addressed blobs: files and directory trees named by their BLAKE3 digest.

>>> store = open_blob_store("~/.shipyard/blobs")      # or "s3://bucket/prefix"
>>> digest = store.put_file("model.onnx")
>>> store.get_file(digest, "/tmp/model.onnx")          # verified, written atomically
"""

from shipyard.blobs._base import BlobStore
from shipyard.blobs._fsspec import FsspecBlobStore, open_blob_store
from shipyard.blobs._hashing import DIGEST_LENGTH, check_digest, hash_bytes, hash_file
from shipyard.blobs._local import LocalBlobStore
from shipyard.blobs._manifest import MANIFEST_FORMAT, Manifest, ManifestEntry

__all__ = [
    "DIGEST_LENGTH",
    "MANIFEST_FORMAT",
    "BlobStore",
    "FsspecBlobStore",
    "LocalBlobStore",
    "Manifest",
    "ManifestEntry",
    "check_digest",
    "hash_bytes",
    "hash_file",
    "open_blob_store",
]
