"""The decompressed bytes of a zstd-compressed transcript archive, read like a file."""

from __future__ import annotations

from typing import BinaryIO

from store_sql.errors import ImportFailedError


class UnreadableArchiveError(ImportFailedError):
    """A .zst archive that does not decompress (or ends inside a frame): kept as bytes only."""


_ZSTD_READ = 64 << 10  # compressed bytes per step: bounds the output of one step (~ratio x)


class ZstdStream:
    """The decompressed bytes of every frame of a zstd file, read like a file.

    python-zstandard's stream_reader returns b"" for a frame cut short instead of failing,
    so a truncated archive would import as an empty transcript; here a stream that ends
    inside a frame (or holds no frame at all) raises UnreadableArchiveError."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._name = name
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._pending = b""
        self._ended = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._pending and not self._ended:
            block = self._raw.read(_ZSTD_READ)
            if not block:
                self._ended = True
                if not self._obj.eof:
                    raise UnreadableArchiveError(
                        f"{self._name}: the zstd data ends inside a frame (truncated archive)"
                    )
                break
            self._pending = self._feed(block)
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def _feed(self, block: bytes) -> bytes:
        out: list[bytes] = []
        try:
            while block:
                if self._obj.eof:  # the previous frame ended: the next one starts here
                    self._obj = self._dctx.decompressobj()
                out.append(self._obj.decompress(block))
                block = self._obj.unused_data if self._obj.eof else b""
        except self._zstd.ZstdError as exc:
            raise UnreadableArchiveError(f"{self._name}: cannot decompress: {exc}") from exc
        return b"".join(out)

    def close(self) -> None:
        self._raw.close()
