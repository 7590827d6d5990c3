"""The S3 side of :mod:`engine.io`: the client, error mapping, ranged and streaming reads, uploads.

:mod:`engine.io` imports this module only when a URI is ``s3://``: botocore and urllib3 cost about
15 MiB of RSS and 0.1 s of import time, and the client ~14 MiB more, which a local conversion
should not pay. Call :mod:`engine.io`'s functions; this module is their S3 backend. It calls
botocore directly: reads are :class:`RangedReader`'s ranged GETs, writes one ``PutObject`` or
:class:`GuardedMultipartWriter`'s multipart upload (smart-open, which the engine used before,
cost 7 MiB of imports for nothing it still used; boto3's session 4 MiB more: issue 23).

All S3 calls go through one cached client (:func:`s3_client`); ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``) redirects every one of them, which botocore honours natively.
"""

from __future__ import annotations

import http.client
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

import botocore.config
import botocore.exceptions
import botocore.session
import urllib3.exceptions

from engine.config import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE
from engine.errors import EngineError, InputNotFoundError, PermanentError, TransientError
from engine.io.requests import count_request
from engine.io.requests import current as current_requests
from engine.io.uri import one_line, split_s3

__all__ = [
    "CLIENT_CONFIG",
    "READ_ATTEMPTS",
    "READ_BACKOFF_SECONDS",
    "READ_MAX_RESUMES",
    "GuardedMultipartWriter",
    "RangedReader",
    "S3Output",
    "map_s3_error",
    "object_size",
    "open_object",
    "read_range",
    "reset_s3_client",
    "s3_client",
]

log = logging.getLogger(__name__)

#: Reads: how many times in a row a broken response body (a reset, a stall past the read
#: timeout, a short body) is met before the read fails with TransientError. Each retry is a
#: ranged GET from the first byte not yet read, so nothing is read twice or skipped. The count
#: starts again once bytes arrive: a long object on a flaky network still gets through.
READ_ATTEMPTS = 5

#: Most broken bodies one read of an object survives in all, progress or not: a connection that
#: breaks every few bytes fails the read instead of crawling through it.
READ_MAX_RESUMES = 100

#: Sleep before the n-th retry of a read: this times 2**(n-1) (0.25 + 0.5 + 1 + 2 s at most).
#: (smart-open's reader, which the engine used before, slept 1+2+4+8+16 s with no setting.)
READ_BACKOFF_SECONDS = 0.25

#: What breaks a response body in flight; anything else (an S3 error code) is not retried here
#: (botocore's standard mode already retried the request itself).
_BROKEN_BODY: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,  # ResponseStreamingError, ReadTimeoutError...
    botocore.exceptions.IncompleteReadError,
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError
    http.client.HTTPException,  # IncompleteRead
    ConnectionError,
    TimeoutError,
)

#: Bytes asked of a response body at a time: what arrived before a break is kept.
READ_CHUNK = 256 * 1024

#: Sleeps between read retries (a module attribute so that tests can record the backoff).
_sleep: Callable[[float], None] = time.sleep

#: Client settings: botocore's "standard" retry mode backs off on throttling (SlowDown,
#: 503), 500s and connection errors, so a failing GetObject or UploadPart is sent again (the part
#: read again from its buffer); the state machine retries what still fails
#: (TransientError). ``total_max_attempts`` counts the first try: 5 attempts in all. (botocore's
#: ``max_attempts`` key counts *retries*: ``max_attempts=5`` would mean 6 attempts.)
#: ``read_timeout`` bounds a stalled read: the body is then resumed by :class:`RangedReader`.
CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "total_max_attempts": 5},
    connect_timeout=10,
    read_timeout=30,
    tcp_keepalive=True,
    max_pool_connections=16,
)

# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------

_client_lock = threading.Lock()
_client: Any = None


def s3_client() -> Any:
    """Return the process-wide S3 client, created on first use.

    It is built from a botocore session of its own (the default session is not thread-safe to
    create clients from) with :data:`CLIENT_CONFIG`: boto3 adds nothing the engine uses, but its
    session costs ~4 MiB (its import, and s3transfer, which it loads into every S3 client).
    botocore reads ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` itself, so setting either
    redirects every S3 call the engine makes (moto server, MinIO, LocalStack). Every request it
    sends is counted against the run that sends it (:mod:`engine.io.requests`).

    Returns:
        A ``botocore`` S3 client, shared by every call in this process.

    """
    global _client
    client = _client
    if client is None:
        with _client_lock:
            if _client is None:
                made = _session().create_client("s3", config=CLIENT_CONFIG)
                made.meta.events.register("before-send.s3", count_request)
                _client = made
            client = _client
    return client


def _session() -> botocore.session.Session:
    """A botocore session whose endpoint data names S3 alone.

    botocore's ``endpoints.json`` describes every AWS service in every partition; loaded, it is
    ~6 MiB of Python objects, which the session keeps for the client's life, of which the S3
    client reads the ``s3`` entries only. The session's loader caches what it loads, and its
    endpoint resolver is made from that cached data when the client is created: dropping the
    other services from it first gives S3 the same endpoints in ~5 MiB less memory (issue 23).
    """
    session = botocore.session.Session()
    endpoints, _ = session.get_component("data_loader").load_data_with_path("endpoints")
    for partition in endpoints.get("partitions", ()):
        services = partition.get("services", {})
        partition["services"] = {name: services[name] for name in ("s3",) if name in services}
    return session


def reset_s3_client() -> None:
    """Forget the cached client, so the next call builds one from the current environment."""
    global _client
    with _client_lock:
        _client = None


# ---------------------------------------------------------------------------------------------
# Error mapping
# ---------------------------------------------------------------------------------------------

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound", "NoSuchVersion"})
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "InvalidObjectState",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "503",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "500",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "429",
        "ExpiredToken",
        "TokenRefreshRequired",
        "PreconditionFailed",  # the object changed while we were reading it (If-Match)
        "412",
        "NoSuchUpload",  # the upload vanished under us (lifecycle rule, another abort)
    }
)
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, SSLError
    botocore.exceptions.HTTPClientError,  # ReadTimeoutError, ConnectionClosedError, streaming
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ChecksumError,
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError, ...
    ConnectionError,  # ConnectionResetError and friends
    TimeoutError,
)
_CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)


def _client_error(exc: BaseException) -> botocore.exceptions.ClientError | None:
    """Return the botocore ClientError behind ``exc``, unwrapping smart-open's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, botocore.exceptions.ClientError):
            return current
        backend = getattr(current, "backend_error", None)  # smart_open.s3._get's OSError
        if isinstance(backend, botocore.exceptions.ClientError):
            return backend
        current = current.__cause__
    return None


def map_s3_error(
    exc: BaseException, uri: str, *, output: bool = False, offset: int | None = None
) -> EngineError | None:
    """Translate an exception from boto3 / smart-open into the engine's hierarchy.

    Args:
        exc: what boto3, botocore, urllib3 or smart-open raised (smart-open wraps ClientErrors in
            ``OSError``/``ValueError``; they are unwrapped).
        uri: the object the call was about.
        output: the call was writing ``uri``: a missing bucket is then a
            :class:`~engine.errors.PermanentError`, not an input that was not found.
        offset: bytes of the stored object consumed when it happened, if reading.

    Returns:
        The engine error to raise, or ``None`` when ``exc`` is not an S3 or network failure (a
        bug, which should propagate as it is).

    """
    if isinstance(exc, EngineError):
        return exc
    client_error = _client_error(exc)
    if client_error is not None:
        error = client_error.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = one_line(f"S3 {code or status}: {error.get('Message') or client_error}")
        if code == "NoSuchBucket" and output:
            return PermanentError(f"output bucket does not exist ({detail})", uri=uri)
        if code in _NOT_FOUND_CODES and not output:
            what = "bucket does not exist" if code == "NoSuchBucket" else "object not found"
            return InputNotFoundError(what, uri=uri)
        if code in _DENIED_CODES or status == 403:
            hint = ""
            if code == "403" and not output:  # HeadObject: no error body to tell the two apart
                hint = "; a missing object looks like this without s3:ListBucket"
            return PermanentError(f"access denied ({detail}{hint})", uri=uri)
        if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
            return TransientError(detail, uri=uri, offset=offset)
        if status == 404 and not output:
            return InputNotFoundError("object not found", uri=uri)
        return PermanentError(detail, uri=uri)
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return TransientError(one_line(f"S3 I/O error: {exc!r}"), uri=uri, offset=offset)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return PermanentError(one_line(f"no usable AWS credentials: {exc}"), uri=uri)
    if type(exc) is OSError:
        # smart-open's own retry loops end with a bare OSError ("failed to read ... after 5
        # attempts", "... failed after 3 attempts"): the network kept failing.
        return TransientError(one_line(f"S3 I/O error: {exc}"), uri=uri, offset=offset)
    return None


@contextmanager
def s3_errors(uri: str, *, output: bool = False) -> Iterator[None]:
    """Re-raise S3 / network failures inside the block as engine errors."""
    try:
        yield
    except EngineError:
        raise
    except Exception as exc:
        mapped = map_s3_error(exc, uri, output=output)
        if mapped is None:
            raise
        raise mapped from exc


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def head_object(client: Any, uri: str, *, reuse: bool = False) -> dict[str, Any]:
    """``HeadObject`` of ``uri``, with its failures as engine errors.

    A HEAD answer has no body, so a missing bucket and a missing key are the same bare 404; on
    that error path one ``HeadBucket`` tells them apart (where it is allowed: it needs
    ``s3:ListBucket``, and without it the message stays "object not found").

    With ``reuse``, inside a run (:func:`engine.io.requests.counting`) the object is asked
    once: a second ``reuse`` call for the same URI gets the first answer. The run's source is
    looked up so (its version names a dataset's files, then its size and ETag are read): one
    HEAD per object, and the files are named after the version that is read (the reads are
    ``If-Match`` that ETag).
    """
    run = current_requests() if reuse else None
    if run is not None and uri in run.heads:
        return run.heads[uri]
    bucket, key = split_s3(uri)
    try:
        with s3_errors(uri):
            answer = cast(dict[str, Any], client.head_object(Bucket=bucket, Key=key))
    except InputNotFoundError as exc:
        if exc.message == "object not found" and not _bucket_exists(client, bucket):
            raise InputNotFoundError("bucket does not exist", uri=uri) from exc
        raise
    if run is not None:
        run.heads[uri] = answer
    return answer


def _bucket_exists(client: Any, bucket: str) -> bool:
    """False only when S3 says the bucket is not there (any other answer: assume it is)."""
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404
    except botocore.exceptions.BotoCoreError:  # the network: the first answer stands
        return True
    return True


def object_size(uri: str) -> int:
    """Size in bytes of the object (one ``HeadObject``)."""
    return int(head_object(s3_client(), uri)["ContentLength"])


def read_range(uri: str, start: int, length: int) -> bytes:
    """Up to ``length`` stored bytes from ``start``: one ``GetObject`` with a ``Range`` header.

    An empty range is still a request (a ``HeadObject``): it proves the object exists, as the
    local path does. A range at or past the end returns ``b""``.
    """
    client = s3_client()
    head = head_object(client, uri)
    size = int(head["ContentLength"])
    if length == 0 or start >= size:
        return b""
    with RangedReader(client, uri, size, head.get("ETag"), start=start,
                      end=min(size, start + length)) as reader:
        return reader.read()


def open_object(uri: str) -> tuple[RangedReader, int]:
    """Open an object for streaming: its stored bytes and its size.

    A ``HeadObject`` checks the object and gives its size and ETag; the bytes then come through
    a :class:`RangedReader`, which resumes from the first byte not yet read after a broken body.
    """
    client = s3_client()
    head = head_object(client, uri)
    size = int(head["ContentLength"])
    return RangedReader(client, uri, size, head.get("ETag")), size


class RangedReader(io.RawIOBase):
    """The bytes ``[start, end)`` of an object, streamed by ranged GETs that resume on failure.

    One ``GetObject`` with ``Range: bytes=<position>-<end - 1>`` streams the bytes; when its body
    breaks (a connection reset, a read stalled past ``read_timeout``, a body shorter than
    announced) the reader closes it, sleeps (:data:`READ_BACKOFF_SECONDS`, doubling) and asks
    again from the first byte not yet returned. After :data:`READ_ATTEMPTS` failures in a row
    without a byte read it raises :class:`~engine.errors.TransientError`. An error S3 answers
    with (a 500 or SlowDown botocore retried already, a 404, access denied) is mapped and raised
    at once. Every GET carries ``If-Match: <ETag>``, so an object replaced mid-read fails
    (``PreconditionFailed``, transient) instead of splicing two versions. No request is made
    before the first read: seeking first (a byte range of the object) costs nothing.
    """

    def __init__(self, client: Any, uri: str, size: int, etag: str | None, *, start: int = 0,
                 end: int | None = None, attempts: int | None = None) -> None:
        super().__init__()
        self._client = client
        self._uri = uri
        self._bucket, self._key = split_s3(uri)
        self._etag = etag
        self._end = size if end is None else min(end, size)
        self._position = start
        self._attempts = READ_ATTEMPTS if attempts is None else attempts
        self._body: Any = None
        #: GETs made so far, and the failures they met (for tests and logs).
        self.requests = 0
        self.failures = 0

    def readable(self) -> bool:
        """Return True."""
        return True

    def seekable(self) -> bool:
        """Return True: seeking only moves the next GET's start."""
        return True

    def tell(self) -> int:
        """The offset of the next byte read, from the start of the object."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset``: the body in flight is dropped, the next read GETs from there."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._end}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self._drop_body()
            self._position = position
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with the next bytes (fewer at the end of the range); 0 at the end.

        The body is read :data:`READ_CHUNK` bytes at a time: when it breaks, what arrived is
        kept (and returned; the next call resumes after it), never read again.
        """
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._end - self._position)
        got = failed = 0
        while got < want:
            try:
                if self._body is None:
                    self._body = self._open()
                data = self._body.read(min(READ_CHUNK, want - got))
                if not data:  # the body ended before the range did
                    raise http.client.IncompleteRead(b"", self._end - self._position)
            except _BROKEN_BODY as exc:
                self._drop_body()
                self.failures += 1
                if self.failures > READ_MAX_RESUMES:
                    raise TransientError(
                        one_line(f"S3 read broke {self.failures} times (READ_MAX_RESUMES): "
                                  f"{exc!r}"), uri=self._uri, offset=self._position) from exc
                if got:
                    break
                failed += 1
                if failed >= self._attempts:
                    raise TransientError(
                        one_line(f"S3 read failed {failed} times in a row at byte "
                                  f"{self._position}: {exc!r}"),
                        uri=self._uri, offset=self._position) from exc
                log.warning("%s: %r at byte %d; resuming with a ranged GET (retry %d of %d)",
                            self._uri, exc, self._position, failed, self._attempts - 1)
                _sleep(READ_BACKOFF_SECONDS * 2 ** (failed - 1))
                continue
            view[got:got + len(data)] = data
            got += len(data)
            self._position += len(data)
        if self._position >= self._end:
            self._drop_body()
        return got

    def _open(self) -> Any:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key,
                                  "Range": f"bytes={self._position}-{self._end - 1}"}
        if self._etag:
            kwargs["IfMatch"] = self._etag
        self.requests += 1
        with s3_errors(self._uri):
            response = self._client.get_object(**kwargs)
        if response["ResponseMetadata"]["HTTPStatusCode"] != 206 and self._position:
            response["Body"].close()  # a server that ignores Range: refuse rather than splice
            raise TransientError("S3 answered a ranged GET with the whole object",
                                 uri=self._uri, offset=self._position)
        return response["Body"]

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken connection may fail too
                log.debug("%s: closing a response body: %r", self._uri, exc)

    def close(self) -> None:
        """Release the HTTP connection."""
        self._drop_body()
        super().close()


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class GuardedMultipartWriter:
    """One multipart upload, its parts sent from a buffer by direct ``UploadPart`` calls.

    The upload is created with the writer. Bytes collect in ``writebuffer`` (memory, or a spool
    file on local disk: the writer only writes, seeks and truncates it) until exactly
    ``part_size`` are held; the buffer is then sent as one part, streamed from its start
    (botocore seeks back to it to send a failed part again), and emptied. A part that fails past
    botocore's retries breaks the writer: every later write or close raises that error again
    rather than sending more. :meth:`close` sends what is left and completes the upload; nothing
    else ever completes it. Collected unfinished, the writer aborts the upload instead (a
    dropped writer must not publish a partial object), and after :meth:`terminate` or
    :meth:`neutralise` nothing can complete it.

    Args:
        bucket: the output's bucket.
        key: the output's key.
        client: the S3 client.
        part_size: bytes per part (the last may be smaller).
        writebuffer: where the next part collects, already holding its first bytes (its
            position is their end); default an empty :class:`io.BytesIO`.

    """

    def __init__(self, bucket: str, key: str, *, client: Any,
                 part_size: int = S3_MIN_PART_SIZE, writebuffer: BinaryIO | None = None) -> None:
        self._upload_id: str | None = None
        self.closed = False
        self._client = client
        self._bucket = bucket
        self._key = key
        self.part_size = part_size
        self._buf: BinaryIO = writebuffer if writebuffer is not None else io.BytesIO()
        self._parts: list[dict[str, Any]] = []
        self._failed: BaseException | None = None
        answer = client.create_multipart_upload(Bucket=bucket, Key=key)
        self._upload_id = answer["UploadId"]

    def write(self, data: Any) -> int:
        """Add ``data`` to the next part; send the part once ``part_size`` bytes are held."""
        if self._upload_id is None:
            raise ValueError(f"write to a finished multipart upload (s3://{self._bucket}/"
                             f"{self._key})")
        if self._failed is not None:
            raise self._failed
        view = memoryview(data).cast("B")
        offset = 0
        while offset < view.nbytes:  # fill the part to exactly part_size, send it, go on
            end = offset + self.part_size - self._buf.tell()
            self._buf.write(view[offset:end])
            if self._buf.tell() < self.part_size:
                break
            self._send_part()
            offset = end
        return view.nbytes

    def _send_part(self) -> None:
        """``UploadPart`` the bytes held (the buffer's start to its position); empty it."""
        if self._failed is not None:
            raise self._failed
        number = len(self._parts) + 1
        self._buf.truncate()  # the part ends here (a reused buffer may hold more)
        self._buf.seek(0)
        try:
            answer = self._client.upload_part(Bucket=self._bucket, Key=self._key,
                                              UploadId=self._upload_id, PartNumber=number,
                                              Body=self._buf)
        except BaseException as exc:
            self._failed = exc
            raise
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buf.seek(0)
        self._buf.truncate()

    def close(self) -> None:
        """Send the last part (S3 needs one, even empty) and complete the upload."""
        if self.closed:
            return
        if self._upload_id is None:
            raise ValueError(f"cannot complete an aborted upload (s3://{self._bucket}/"
                             f"{self._key})")
        if self._failed is not None:
            raise self._failed
        if self._buf.tell() or not self._parts:
            self._send_part()
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts})
        self._upload_id = None
        self.closed = True

    def terminate(self) -> None:
        """Abort the upload (its parts are deleted); nothing can complete it afterwards."""
        upload_id, self._upload_id = self._upload_id, None
        self.closed = True
        if upload_id is not None:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key,
                                                UploadId=upload_id)

    def __del__(self) -> None:
        if getattr(self, "_upload_id", None) is None:
            return
        try:
            self.terminate()
        except Exception:  # noqa: BLE001 - a finaliser must not raise
            log.warning("could not abort abandoned multipart upload of %s", self._key)
        finally:
            self._upload_id = None

    def neutralise(self) -> None:
        """Mark the upload finished without touching S3, so nothing can complete it later."""
        self._upload_id = None
        self.closed = True


class S3Output:
    """The S3 backend of :class:`engine.io.AtomicOutput`: one ``PutObject``, or a multipart upload.

    The bytes are held in a buffer until a part's worth (``part_size``, clamped to S3's limits)
    has been written. An output that ends before that (most outputs of small inputs: a 10 MB CSV
    makes ~2 MB of Parquet) is published by one ``PutObject``, which S3 applies whole or not at
    all: one request instead of three, and nothing to abort on failure. A larger one starts a
    multipart upload then (:class:`GuardedMultipartWriter`), its first part the bytes held (the
    writer takes the buffer over, nothing is copied), and the rest goes up part by part; the
    buffer holds one part at most either way.

    The buffer is memory unless ``buffer`` makes it something else: a Parquet output's spool
    passes a file on local disk (:mod:`engine.sink.spool`), from which each part and the
    ``PutObject`` are streamed. The buffer is closed when the output is published or discarded.
    """

    def __init__(self, uri: str, part_size: int,
                 buffer: Callable[[], BinaryIO] | None = None) -> None:
        self.uri = uri
        self.part_size = min(max(part_size, S3_MIN_PART_SIZE), S3_MAX_PART_SIZE)
        self._bucket, self._key = split_s3(uri)
        self._new_buffer: Callable[[], BinaryIO] = buffer or io.BytesIO
        self._held = self._new_buffer()
        self._writer: GuardedMultipartWriter | None = None

    def open(self) -> S3Output:
        """Start the output; returns the sink the data goes to (this object)."""
        return self

    def write(self, data: Any) -> int:
        """Hold ``data``; once a part's worth is held, start the multipart upload with it."""
        if self._writer is not None:
            return cast(int, self._writer.write(data))
        view = memoryview(data).cast("B")
        if self._held.tell() + view.nbytes < self.part_size:
            return self._held.write(view)
        with s3_errors(self.uri, output=True):
            self._writer = GuardedMultipartWriter(
                self._bucket, self._key, part_size=self.part_size, client=s3_client(),
                writebuffer=self._held,
            )
        return cast(int, self._writer.write(view))

    def publish(self) -> None:
        """``PutObject`` the bytes held, or upload the last part and complete the upload."""
        with s3_errors(self.uri, output=True):
            if self._writer is not None:
                self._writer.close()
                self._release()
                return
            self._held.seek(0)
            s3_client().put_object(Bucket=self._bucket, Key=self._key, Body=self._held)
        self._release()

    def _release(self) -> None:
        """Close the buffer (a spool file gives its disk space back), keeping an empty one."""
        held, self._held = self._held, io.BytesIO()
        held.close()

    def discard(self) -> None:
        """Abort the upload; never raises (a failure is logged, the upload left to lifecycle)."""
        self._release()
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.terminate()
        except Exception as exc:  # noqa: BLE001 - abort runs on error paths; never mask them
            log.warning("could not abort the multipart upload of %s: %r", self.uri, exc)
        finally:
            writer.neutralise()  # closed: neither close() nor __del__ can complete it

    def delete(self) -> None:
        """Delete the published object (deleting a missing key is not an error on S3)."""
        with s3_errors(self.uri, output=True):
            s3_client().delete_object(Bucket=self._bucket, Key=self._key)

    def map_error(self, exc: BaseException) -> EngineError | None:
        """Map a failure while writing (``None``: not an S3 or network failure)."""
        return map_s3_error(exc, self.uri, output=True)
