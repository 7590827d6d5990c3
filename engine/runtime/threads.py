"""Overlap the stages of a conversion on worker threads, with bounded hand-offs.

pyarrow's parsers and Parquet encoder, zstd/bz2/ISA-L decompression and S3 reads all release the
GIL, so reading, parsing and writing can run at once on a machine with more than one core. Each
hand-off is a queue of ``depth`` items (the parse stage's also bounded in bytes), so the memory
in flight stays a fixed number of blocks and bytes of chunks, whatever the input size. With
``threads=1`` nothing here is used.
"""

from __future__ import annotations

import collections
import contextvars
import ctypes
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Generic, TypeVar

from engine.config import FULL_VCPU_MB

__all__ = [
    "PARSE_AHEAD_DEPTH",
    "Prefetch",
    "ReadAhead",
    "conversion_threads",
    "lambda_threads",
    "limit_malloc_arenas",
    "worker_threads",
]

#: Set by Lambda to the function's memory size in MB.
LAMBDA_MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1
_M_ARENA_MAX = -8  # glibc's mallopt parameter number
_arenas_limited = False


def lambda_threads(memory_mb: int) -> int:
    """The threads a conversion uses in a Lambda of ``memory_mb``: one below a full vCPU.

    Lambda reports two CPUs whatever the memory size (the share is enforced by throttling);
    below :data:`~engine.config.FULL_VCPU_MB` a second thread only competes with the first for
    the same share of a core, and costs ~15 MiB of peak RSS.
    """
    return 1 if memory_mb < FULL_VCPU_MB else 2


def worker_threads(requested: int | None = None) -> int:
    """The threads a conversion uses: the one rule, wherever the engine decides it.

    ``requested``, else in a Lambda :func:`lambda_threads` of its memory size
    (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``), else 2 when two cores are usable, else 1.
    """
    if requested is not None:
        return max(1, requested)
    memory = os.environ.get(LAMBDA_MEMORY_VARIABLE, "")
    if memory.isdigit():
        return lambda_threads(int(memory))
    try:
        return min(2, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return min(2, os.cpu_count() or 1)


#: Most parsed chunks the parse stage holds ahead of the consumer. What bounds them is their
#: bytes (the ``budget`` of :class:`Prefetch`: half a row group, from
#: :func:`~engine.config.parse_ahead_bytes`); this only caps the count when a small block size
#: makes many small chunks.
PARSE_AHEAD_DEPTH = 32

#: Blocks of text an input must have before a worker thread is started for it. Reading ahead
#: overlaps block n + 1 with parsing block n, and Parquet encoding happens once a row group is
#: full: on an input of one or two blocks there is nothing to overlap, and starting the threads
#: costs more CPU than it saves time (a 4 MB CSV: +20 % CPU at two threads).
THREAD_MIN_BLOCKS = 2

#: A compressed input's text, as a multiple of its stored size, for :func:`conversion_threads`
#: (CSV and JSON compress 3 to 10 times with gzip or zstd: 3 errs towards threads).
COMPRESSED_TEXT_RATIO = 3


def conversion_threads(requested: int | None, stored_bytes: int | None, *, compressed: bool,
                       block_size: int) -> int:
    """The threads one conversion uses: :func:`worker_threads`, but one for a small input.

    An explicit ``requested`` is kept. Otherwise an input whose text is expected to be at most
    :data:`THREAD_MIN_BLOCKS` blocks runs on the calling thread alone: no thread is started.

    Example:
        >>> MiB = 1 << 20
        >>> conversion_threads(None, 1 * MiB, compressed=False, block_size=4 * MiB)
        1
        >>> conversion_threads(2, 1 * MiB, compressed=False, block_size=4 * MiB)
        2
    """
    if requested is not None:
        return max(1, requested)
    threads = worker_threads(None)
    if threads > 1 and stored_bytes is not None:
        text = stored_bytes * (COMPRESSED_TEXT_RATIO if compressed else 1)
        if text <= THREAD_MIN_BLOCKS * block_size:
            return 1
    return threads


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc malloc's arenas before the engine starts worker threads (once per process).

    Each thread that allocates gets its own glibc arena (up to 8 per core), and buffers handed
    between threads fragment them: with two threads, peak RSS on a JSON array grew ~10 MiB
    from 100 MB to 500 MB of input; capped at 2 arenas it stays within ~5 MiB, at no measured
    CPU cost (``chunkwise size``, profiles/). Arrow's buffers use mimalloc and are unaffected.
    Does nothing off glibc, or when ``MALLOC_ARENA_MAX`` is set (glibc read it at start-up).
    """
    global _arenas_limited
    if _arenas_limited or "MALLOC_ARENA_MAX" in os.environ:
        return
    _arenas_limited = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        pass


class Prefetch(Generic[T]):
    """Iterate ``source`` on a worker thread, at most ``depth`` items ahead of the consumer.

    With ``weigh``, the items held may also weigh at most ``budget`` in all (one item is always
    let through, whatever it weighs): the parse stage holds parsed chunks up to half a row
    group's bytes, so that it keeps parsing while the consumer encodes a row group
    (:func:`~engine.config.parse_ahead_bytes`).

    An exception raised by ``source`` is re-raised by ``next()`` in the consumer. ``close()``
    (also on leaving a ``with`` block) stops the worker and closes ``source``.
    """

    def __init__(self, source: Iterable[T], *, depth: int = 1, name: str = "chunkwise",
                 weigh: Callable[[T], int] | None = None, budget: int = 0) -> None:
        limit_malloc_arenas()
        self._depth = max(1, depth)
        self._weigh = weigh
        self._budget = budget
        self._items: collections.deque[tuple[object, BaseException | None, int]] = (
            collections.deque())
        self._held = 0  # the weight of the items held
        self._ready = threading.Condition()
        self._stop = threading.Event()
        # The worker runs in a copy of the caller's context: what the run keeps there (its S3
        # request count, engine.io.requests) sees the worker's reads too.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run, source), name=name,
                                        daemon=True)
        self._thread.start()

    def _full(self, weight: int) -> bool:
        """Whether an item of ``weight`` must wait for the consumer to take one."""
        if not self._items:
            return False
        return len(self._items) >= self._depth or (
            self._weigh is not None and self._held + weight > self._budget)

    def _put(self, item: object, exc: BaseException | None = None) -> bool:
        weight = self._weigh(item) if self._weigh is not None and exc is None \
            and item is not _DONE else 0  # type: ignore[arg-type]
        with self._ready:
            while self._full(weight):
                if self._stop.is_set():
                    return False
                self._ready.wait(_POLL_SECONDS)
            if self._stop.is_set():
                return False
            self._items.append((item, exc, weight))
            self._held += weight
            self._ready.notify_all()
        return True

    def _run(self, source: Iterable[T]) -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(None, exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        with self._ready:
            while not self._items:
                self._ready.wait()
            item, exc, weight = self._items[0]
            if item is not _DONE:  # the end stays, so that later next() calls stop too
                self._items.popleft()
                self._held -= weight
                if exc is not None:  # the source ended with it: what follows is the end
                    self._items.appendleft((_DONE, None, 0))
                self._ready.notify_all()
        if exc is not None:
            raise exc
        if item is _DONE:
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the worker, drop what it prefetched and wait for it."""
        self._stop.set()
        with self._ready:
            self._items.clear()
            self._held = 0
            self._ready.notify_all()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadAhead:
    """A binary stream that reads (and decompresses) ``stream`` one block ahead on a thread.

    A consumer that copies what it reads (:meth:`readinto`: the CSV and NDJSON readers' one
    reused buffer) hands each block back once it is copied, and the thread reads the next
    blocks into those: a few buffers go round instead of a new block per read. A fresh block
    each time cost its pages faulted in and, once freed, given back to the system: ~6,000
    page faults per 200 MB, most of the system time a second thread added on CSV (issue 17).
    Blocks that :meth:`read` returns whole (the JSON array reader's) are the consumer's to
    keep, and are never reused.
    """

    def __init__(self, stream: BinaryIO, block_size: int, *, depth: int = 1) -> None:
        #: copied blocks for the thread to read into (appended here, taken there: a deque's
        #: append and popleft are atomic)
        self._spare: collections.deque[bytearray] = collections.deque()
        #: whether the consumer copies: set by its first readinto, read by the thread
        self._copies = False
        self._blocks = Prefetch(self._produce(stream, block_size), depth=depth,
                                name="chunkwise-read")
        self._current = memoryview(b"")
        self._block: bytes | bytearray = b""  # what _current is a view of
        self._eof = False

    def _produce(self, stream: BinaryIO, block_size: int) -> Iterator[bytes | bytearray]:
        """The blocks of ``stream``: into spare buffers once the consumer copies, else new."""
        readinto = getattr(stream, "readinto", None)
        while True:
            if readinto is not None and (self._spare or self._copies):
                block = self._spare.popleft() if self._spare else bytearray(block_size)
                n = readinto(memoryview(block)) or 0
                if not n:
                    return
                yield block if n == len(block) else memoryview(block)[:n]
            else:
                data = stream.read(block_size)
                if not data:
                    return
                yield data

    def _fill(self) -> bool:
        """Whether bytes are at hand, taking the next prefetched block when the current is used."""
        if not self._current and not self._eof:
            try:
                item: Any = next(self._blocks)
            except StopIteration:
                self._eof = True
            else:
                self._current = memoryview(item)
                self._block = item.obj if isinstance(item, memoryview) else item
        return bool(self._current)

    def _spent(self) -> bytearray | None:
        """The current block, taken from the consumer once used up, if it can be reused."""
        if self._current or not isinstance(self._block, bytearray):
            return None
        block, self._block = self._block, b""
        self._current = memoryview(b"")
        return block

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` from the prefetched blocks; fewer bytes only at the end of the stream."""
        self._copies = True
        filled = 0
        while filled < len(view) and self._fill():
            n = min(len(view) - filled, len(self._current))
            view[filled:filled + n] = self._current[:n]
            self._current = self._current[n:]
            filled += n
            if (spent := self._spent()) is not None:  # copied: the thread may read into it
                self._spare.append(spent)
        return filled

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative); fewer only at the end.

        A read of a whole prefetched ``bytes`` block (the JSON reader reads a block at a time)
        returns the block itself; other reads join their pieces, one copy. (Through a buffer
        and two copies of it, each block cost 12 MiB of transient memory at 4 MiB blocks:
        issue 23.)
        """
        if size < 0:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        pieces: list[memoryview] = []
        spent: list[bytearray] = []
        want = size
        while want > 0 and self._fill():
            piece = self._current[:want]
            pieces.append(piece)
            self._current = self._current[piece.nbytes:]
            want -= piece.nbytes
            if (block := self._spent()) is not None:
                spent.append(block)
        if len(pieces) == 1:
            whole = pieces[0].obj
            if isinstance(whole, bytes) and pieces[0].nbytes == len(whole):
                return whole
        data = b"".join(pieces)
        self._spare.extend(spent)  # only once joined: the thread overwrites them
        return data

    def close(self) -> None:
        """Stop the reading thread."""
        self._blocks.close()
