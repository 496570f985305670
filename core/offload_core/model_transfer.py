"""Model files on the wire: compressed with zstd, and updates sent as a patch from the file the device holds.

One codec for both jobs. zstd decompresses at hundreds of MB/s on a phone's core and its
"patch-from" mode (the old file as a raw dictionary for the new one) makes a binary delta with the
same library; gzip has no delta mode, and xz, 1-3 % smaller, decodes ~10x slower. The library is
Python's own `compression.zstd` (3.14+), or its backport before that: 1.8 MB installed, where the
`zstandard` package takes 24 MB. What the receiver gets is always checked by the sha256 of the
*decoded* file: a body that does not decode to it is discarded (`offload_client.model_sync`).

Example:
    >>> old, new = b"weights v1 " * 1000, b"weights v2 " * 1000
    >>> apply_patch(old, patch(old, new)) == new
    True
    >>> decompress(compress(new)) == new
    True
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

# The client asks for the compressed file with `Accept-Encoding: zstd` and gets `Content-Encoding: zstd`.
ZSTD = "zstd"
# The sha256 of the file the client already holds (request), and the file a patch applies to (answer).
HAVE_HEADER = "X-Offload-Have"
PATCH_FROM_HEADER = "X-Offload-Patch-From"
PATCH_MEDIA_TYPE = "application/vnd.offload.zstd-patch"
# High: a model file is compressed once, on the server, and downloaded by every phone.
LEVEL = 19
# Decoders refuse windows larger than this (a patch of files up to 1 GiB together); a hostile header
# cannot make a phone allocate more.
MAX_WINDOW_LOG = 30
DECODING = {int(zstd.DecompressionParameter.window_log_max): MAX_WINDOW_LOG}  # the stubs take int keys


class TransferError(ValueError):
    """A compressed body or a patch that does not decode."""


def compress(data: bytes) -> bytes:
    return zstd.compress(data, level=LEVEL)


class Decompressor:
    """A streaming decoder for one compressed body: feed it the chunks as they arrive."""

    def __init__(self) -> None:
        self._zstd = zstd.ZstdDecompressor(options=DECODING)

    def feed(self, chunk: bytes) -> bytes:
        try:
            return self._zstd.decompress(chunk)
        except (zstd.ZstdError, EOFError) as exc:
            raise TransferError(f"the compressed body does not decode: {exc}") from None

    def finish(self) -> None:
        """Raises `TransferError` when the body ended before its last frame did."""
        if not self._zstd.eof:
            raise TransferError("the compressed body ended mid-frame")


def decompress(data: bytes) -> bytes:
    decoder = Decompressor()
    out = decoder.feed(data)
    decoder.finish()
    return out


def patch(old: bytes, new: bytes) -> bytes:
    """`new` compressed with `old` as its dictionary: only what changed costs bytes."""
    window_log = min(MAX_WINDOW_LOG, max(20, (len(old) + len(new)).bit_length()))  # reaches all of `old`
    options = {
        int(zstd.CompressionParameter.compression_level): LEVEL,
        int(zstd.CompressionParameter.window_log): window_log,
        int(zstd.CompressionParameter.enable_long_distance_matching): 1,
    }
    return zstd.compress(new, options=options, zstd_dict=zstd.ZstdDict(old, is_raw=True))


def apply_patch(old: bytes, delta: bytes) -> bytes:
    """The new file from the old one and `patch(old, new)`. Raises `TransferError` if it does not decode."""
    try:
        return zstd.decompress(delta, zstd_dict=zstd.ZstdDict(old, is_raw=True), options=DECODING)
    except (zstd.ZstdError, EOFError) as exc:
        raise TransferError(f"the patch does not apply: {exc}") from None
