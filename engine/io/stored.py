"""An input's stored bytes looked at once: where they are, which version, and the first of them.

A run reads its input twice over: sampling reads the head (and, on a large object, a few
ranges) to infer types, then the conversion streams it all. :func:`probe_input` reads the head
once: on S3 one ``HeadObject`` (the size and the ETag) and one ranged ``GetObject`` of the first
bytes. The conversion's stream (:class:`Continued`) then starts from those bytes in memory and
goes on with one ranged GET from where they end, ``If-Match`` the ETag, so the two cannot come
from different versions of the object. An input no larger than the probe is read whole by that
one GET: sampling and the conversion both read it from memory, and the input costs S3 two
requests, whatever reads it.

A local file is read the same way, but its bytes are kept only when the probe read all of it (a
file has no ETag to check a continuation against: a larger one is read again from its start).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

from engine.io.uri import is_s3, local_error, local_path

__all__ = ["Continued", "StoredHead", "probe_input"]


@dataclass(frozen=True)
class StoredHead:
    """The first stored bytes of an input, and what they were read from.

    Attributes:
        uri: the object or file.
        start: where the input starts in it (a byte range's start, else 0).
        end: where the input ends in it (clamped to its size).
        etag: the object's ETag (``None`` for a local file).
        data: the stored bytes ``[start, start + len(data))``.

    """

    uri: str
    start: int
    end: int
    etag: str | None
    data: bytes

    @property
    def size(self) -> int:
        """Stored bytes of the input."""
        return self.end - self.start

    @property
    def whole(self) -> bool:
        """Whether :attr:`data` is all of the input."""
        return len(self.data) >= self.size

    @property
    def continuable(self) -> bool:
        """Whether a stream may start from :attr:`data` and read on from the object.

        On S3 the rest is read ``If-Match`` the ETag; a local file, with nothing to check
        against, only when there is no rest.
        """
        return self.whole or is_s3(self.uri)


def probe_input(uri: str, want: int, *, whole_up_to: int = 0,
                byte_range: tuple[int, int] | None = None) -> StoredHead:
    """Read the first ``want`` stored bytes of ``uri`` (of its ``byte_range``): one GET on S3.

    An input of at most ``whole_up_to`` bytes is read whole. A local file larger than that is
    not read here (its head would not be used: see :attr:`StoredHead.continuable`).

    Example:
        >>> head = probe_input(path, 16, whole_up_to=1 << 20)
        >>> head.whole, head.data[:8]
        (True, b'order_id')

    Raises:
        InputNotFoundError: no such file, object or bucket.
        InputFormatError: a local path names a directory.
        PermanentError: access denied.
        TransientError: S3 throttling or a network failure.

    """
    first, last = byte_range if byte_range is not None else (0, None)
    if is_s3(uri):
        from engine.io import s3

        client = s3.s3_client()
        head = s3.head_object(client, uri, reuse=True)  # the run may have asked already
        size, etag = int(head["ContentLength"]), head.get("ETag")
        end = size if last is None else min(last, size)
        start = min(first, end)
        n = end - start if end - start <= whole_up_to else min(want, end - start)
        data = b""
        if n:
            with s3.RangedReader(client, uri, size, etag, start=start, end=start + n) as reader:
                data = reader.read()
        return StoredHead(uri, start, end, etag, data)
    path = local_path(uri)
    try:
        with open(path, "rb", buffering=0) as fh:  # open() refuses a directory
            size = os.fstat(fh.fileno()).st_size
            end = size if last is None else min(last, size)
            start = min(first, end)
            n = end - start if end - start <= whole_up_to else 0
            data = os.pread(fh.fileno(), n, start) if n else b""
            while len(data) < n:  # a regular file answers whole, but the API allows less
                more = os.pread(fh.fileno(), n - len(data), start + len(data))
                if not more:
                    break
                data += more
    except OSError as exc:
        raise local_error(exc, uri) from exc
    return StoredHead(uri, start, end, None, data)


class Continued(io.RawIOBase):
    """The stored bytes of an input: :attr:`StoredHead.data` from memory, then the rest.

    Args:
        head: what :func:`probe_input` read (it must be :attr:`~StoredHead.continuable`).
        rest: opens the stored bytes from ``head.start + len(head.data)`` to ``head.end``;
            called at the first read past ``data`` (never, when ``data`` is the whole input).

    """

    def __init__(self, head: StoredHead, rest: Any) -> None:
        super().__init__()
        self._data = memoryview(head.data)
        self._position = 0
        self._open_rest = rest if not head.whole else None
        self._rest: Any = None

    def readable(self) -> bool:
        """Return True."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from memory, then from the rest of the input; 0 at the end."""
        view = memoryview(buffer).cast("B")
        if self._position < len(self._data):
            n = min(len(view), len(self._data) - self._position)
            view[:n] = self._data[self._position:self._position + n]
            self._position += n
            return n
        if self._open_rest is None:
            return 0
        if self._rest is None:
            self._rest = self._open_rest()
        return int(self._rest.readinto(view) or 0)

    def close(self) -> None:
        """Release the rest's file handle or HTTP connection."""
        if self.closed:
            return
        try:
            if self._rest is not None:
                self._rest.close()
        finally:
            self._data = memoryview(b"")
            super().close()
