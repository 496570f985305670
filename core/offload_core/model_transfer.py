"""Model files on the wire: compressed with zstd, and updates sent as a patch from the file the device holds.

One codec for both jobs. zstd decompresses at hundreds of MB/s on a phone's core and its
"patch-from" mode (the old file as a dictionary of the new one) makes a binary delta with the same
library; gzip has no delta mode and xz, ~3 % smaller, decompresses ~10x slower. What the receiver
gets is always checked by the sha256 of the *decoded* file: a body that does not decode to it is
discarded (see `offload_client.model_sync`).

Example:
    >>> old, new = b"weights v1 " * 1000, b"weights v2 " * 1000
    >>> apply_patch(old, patch(old, new)) == new
    True
    >>> decompress(compress(new)) == new
    True
"""

from __future__ import annotations

import zstandard

# The client asks for the compressed file with `Accept-Encoding: zstd` and gets `Content-Encoding: zstd`.
ZSTD = "zstd"
# The sha256 of the file the client already holds (request), and the file a patch applies to (answer).
HAVE_HEADER = "X-Offload-Have"
PATCH_FROM_HEADER = "X-Offload-Patch-From"
PATCH_MEDIA_TYPE = "application/vnd.offload.zstd-patch"
# High: a model file is compressed once, on the server, and downloaded by every phone.
LEVEL = 19
# Decoders refuse windows larger than this (a patch of a file up to 1 GiB); a hostile header cannot
# make a phone allocate more.
MAX_WINDOW_LOG = 30


class TransferError(ValueError):
    """A compressed body or a patch that does not decode."""


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL, write_content_size=True).compress(data)


def decompressor() -> zstandard.ZstdDecompressionObj:
    """A streaming decoder: feed it the body chunk by chunk (`.decompress(chunk)`)."""
    return zstandard.ZstdDecompressor(max_window_size=1 << MAX_WINDOW_LOG).decompressobj()


def decompress(data: bytes) -> bytes:
    try:
        return b"".join([decompressor().decompress(data)])
    except zstandard.ZstdError as exc:
        raise TransferError(f"not a zstd stream: {exc}") from None


def _window_log(old: bytes, new: bytes) -> int:
    """A window that spans the old file and the new one, so the whole old file can be referenced."""
    return min(MAX_WINDOW_LOG, max(20, (len(old) + len(new)).bit_length()))


def patch(old: bytes, new: bytes) -> bytes:
    """`new` compressed with `old` as its dictionary: only what changed costs bytes."""
    params = zstandard.ZstdCompressionParameters.from_level(
        LEVEL, window_log=_window_log(old, new), enable_ldm=True, write_content_size=True
    )
    dictionary = zstandard.ZstdCompressionDict(old, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params).compress(new)


def apply_patch(old: bytes, delta: bytes) -> bytes:
    """The new file from the old one and `patch(old, new)`. Raises `TransferError` if it does not decode."""
    dictionary = zstandard.ZstdCompressionDict(old, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    try:
        return zstandard.ZstdDecompressor(dict_data=dictionary, max_window_size=1 << MAX_WINDOW_LOG).decompress(delta)
    except zstandard.ZstdError as exc:
        raise TransferError(f"the patch does not apply: {exc}") from None
