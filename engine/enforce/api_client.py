"""The HTTP side of ``enrich_api``: one URL, its token, retries, pacing and counters.

:class:`ApiClient` sends JSON requests to the one URL a contract declares, through urllib3 (it
comes with botocore): TLS verified against the system's CAs, no proxy (urllib3 reads none from the
environment), no redirects followed (a redirect would reach a URL the contract does not name), and
the data only ever fills the URL's ``{column}`` placeholders, percent-encoded.

A request that fails in a way that may pass (429, 5xx, a timeout, a reset or refused connection)
is tried again, up to ``max_attempts`` in all, after a backoff with full jitter, or after the
``Retry-After`` the server asked for; then the file fails with
:class:`~engine.errors.TransientError`, which the state machine retries. Any other 4xx is a
:class:`~engine.errors.PermanentError` naming the host and the status (a 401 or 403 first reads
the secret again, once, in case it was rotated). Errors name the host, never the path or query
(they hold keys) and never the token.

The token is read through Powertools' parameters utility, which caches it for
:data:`SECRET_MAX_AGE_S` (one ``GetSecretValue`` per warm process and period). Powertools is a
dependency of the engine (``pyproject.toml``) and in the Lambda layer; it is imported only when a
contract has a secret. The token lives in Powertools' cache only: no object here holds it, and it
goes into a request header and nowhere else.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from engine.errors import EngineError, PermanentError, TransientError

__all__ = ["SECRET_MAX_AGE_S", "ApiClient", "ApiStats", "read_token"]

#: Seconds the token is reused before Secrets Manager is asked again (rotation takes effect).
SECRET_MAX_AGE_S = 300
#: A response larger than this is refused: a batch of keys has no business being bigger.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Backoff before attempt ``n + 1``: up to ``BACKOFF_BASE_S * 2 ** (n - 1)``, at most this.
BACKOFF_CAP_S = 20.0
BACKOFF_BASE_S = 0.2
#: The longest ``Retry-After`` honoured; a longer one waits this long and tries.
RETRY_AFTER_CAP_S = 60.0

#: Replaced by tests to record waits instead of sleeping (no wall-clock in tests).
_sleep = time.sleep
_now = time.monotonic


@dataclass
class ApiStats:
    """What a step asked of its API, for the RunReport (updated from several threads)."""

    requests: int = 0
    keys_requested: int = 0
    cache_hits: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        """Add ``amounts`` to the named counters, atomically."""
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def to_dict(self) -> dict[str, Any]:
        """The counters as plain data."""
        return {"requests": self.requests, "keys_requested": self.keys_requested,
                "cache_hits": self.cache_hits, "retries": self.retries,
                "wait_seconds": round(self.wait_seconds, 3)}


def read_token(secret: str, *, refresh: bool = False) -> str:
    """The token stored in ``secret``: its SecretString, or the ``token`` of a JSON one.

    Raises:
        TransientError: Secrets Manager could not be reached or throttled the call.
        PermanentError: the secret does not exist, may not be read, or holds no token.
    """
    from aws_lambda_powertools.utilities import parameters  # only contracts with a secret

    _quiet_secret_logs()
    _reading.active = True
    try:
        value = parameters.get_secret(secret, max_age=SECRET_MAX_AGE_S, force_fetch=refresh)
    except parameters.GetParameterError as exc:
        raise _secret_error(secret, exc) from None
    finally:
        _reading.active = False
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("token") or "").strip()
        except (ValueError, AttributeError):
            text = ""
        if not text:
            raise PermanentError(f"secret {secret}: its JSON has no \"token\" key")
    if not text:
        raise PermanentError(f"secret {secret} is empty")
    return text


#: Set on the thread reading the secret, while it reads it.
_reading = threading.local()
#: botocore's loggers that, at DEBUG, write a response's body: GetSecretValue's holds the token.
_BODY_LOGGERS = ("botocore.parsers", "botocore.endpoint")


class _SecretReadFilter(logging.Filter):
    """Drops the records those loggers write on a thread while it reads the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_reading, "active", False)


_FILTER = _SecretReadFilter()


def _quiet_secret_logs() -> None:
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _secret_error(secret: str, exc: Exception) -> EngineError:
    """The error for a failed ``GetSecretValue``, by the AWS error code Powertools wrapped."""
    cause = exc.__context__
    code = ""
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if code in ("ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure",
                "InvalidRequestException", "InvalidParameterException"):
        return PermanentError(f"secret {secret}: {code}")
    return TransientError(f"secret {secret}: cannot be read now ({code or type(cause).__name__})")


class _Pacer:
    """Starts at most ``rate`` requests per second across threads (evenly spaced)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_start = 0.0
        self.lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next request may start; the seconds waited."""
        if not self.interval:
            return 0.0
        with self.lock:
            now = _now()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        delay = start - now
        if delay > 0:
            _sleep(delay)
        return max(delay, 0.0)


class _Retry(Exception):
    """An attempt failed in a way that may pass; ``after``: seconds the server asked for."""

    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.why, self.after = why, after


class ApiClient:
    """JSON requests to one declared URL, with the step's token, retries and pacing.

    Args:
        spec: the step's :class:`~engine.contract.EnrichApiSpec`.
        stats: the counters to add requests, retries and waits to.
    """

    def __init__(self, spec: Any, stats: ApiStats) -> None:
        import urllib3  # comes with botocore; loaded only by contracts with enrich_api

        self.spec, self.stats = spec, stats
        self.host = spec.host
        self.pacer = _Pacer(spec.rate_limit_per_s)
        self.timeout = urllib3.Timeout(total=spec.timeout_s)
        # One pool per step; retries are ours (counted, Retry-After honoured), redirects refused.
        self.pool = urllib3.PoolManager(num_pools=1, maxsize=spec.concurrency, block=True,
                                        retries=False, cert_reqs="CERT_REQUIRED")
        self._urllib3 = urllib3

    # -- requests ----------------------------------------------------------------------------

    def post(self, body: dict[str, Any]) -> Any:
        """POST ``body`` as JSON to the URL; the decoded JSON answer."""
        payload = json.dumps(body, separators=(",", ":"), default=_json_default).encode()
        status, data = self._request("POST", self.spec.url, payload)
        if status == 404:
            raise PermanentError(f"{self.host} answered 404 to a batch request: check the url")
        return data

    def get(self, values: dict[str, Any]) -> Any | None:
        """GET the URL with its placeholders filled from ``values``; ``None`` on 404."""
        url = self.spec.url
        for name, value in values.items():
            url = url.replace("{" + name + "}", quote(_text(value), safe=""))
        status, data = self._request("GET", url, None)
        return None if status == 404 else data

    def _request(self, method: str, url: str, body: bytes | None) -> tuple[int, Any]:
        attempts = self.spec.max_attempts
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            self.pacer.wait()
            try:
                return self._attempt(method, url, body)
            except _Retry as retry:
                if attempt >= attempts:
                    raise TransientError(f"{self.host}: no answer after {attempts} attempt"
                                         f"{'s' if attempts > 1 else ''} ({retry.why})"
                                         ) from None
                self.stats.add(retries=1)
                _sleep(_backoff(attempt, retry.after))
            except _Unauthorised as exc:
                if self.spec.secret is None:
                    raise PermanentError(f"{self.host} answered {exc.status}: it wants a "
                                         "token (set secret)") from None
                if refreshed:
                    raise PermanentError(f"{self.host} answered {exc.status}: it refused the "
                                         f"token of secret {self.spec.secret}") from None
                # Rotated since it was cached? Read it again, once; not the API's fault, so
                # not an attempt.
                refreshed, attempt = True, attempt - 1
                read_token(self.spec.secret, refresh=True)
                self.stats.add(retries=1)

    def _attempt(self, method: str, url: str, body: bytes | None) -> tuple[int, Any]:
        urllib3 = self._urllib3
        headers = {"Accept": "application/json", "User-Agent": "chunkwise-enrich-api"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.spec.secret is not None:
            headers[self.spec.auth_header] = "Bearer " + read_token(self.spec.secret)
        try:
            response = self.pool.request(method, url, body=body, headers=headers,
                                         timeout=self.timeout, retries=False, redirect=False,
                                         preload_content=False)
            try:
                status = response.status
                # Read even an error's body, so that the connection can serve the next request.
                data = response.read(MAX_RESPONSE_BYTES + 1)
                if len(data) > MAX_RESPONSE_BYTES:
                    response.close()  # the rest unread: this connection cannot be reused
            finally:
                response.release_conn()
        except urllib3.exceptions.SSLError as exc:
            raise PermanentError(f"{self.host}: TLS verification failed "
                                 f"({type(exc).__name__})") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, urllib3.exceptions.SSLError):
                raise PermanentError(f"{self.host}: TLS verification failed") from None
            raise _Retry(_describe(reason)) from None
        finally:
            self.stats.add(requests=1)
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            raise _Unauthorised(status)
        if status == 404:
            return status, None
        if status >= 300:
            raise PermanentError(f"{self.host} answered {status}"
                                 + (" (a redirect, not followed)" if status < 400 else ""))
        if len(data) > MAX_RESPONSE_BYTES:
            raise PermanentError(f"{self.host}: a response larger than "
                                 f"{MAX_RESPONSE_BYTES // 2**20} MiB")
        try:
            return status, json.loads(data, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise _malformed(self.host, "the response is not JSON") from None


class _Unauthorised(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _malformed(host: str, why: str) -> EngineError:
    from engine.errors import SchemaError

    return SchemaError(f"{host}: {why}")


def _describe(reason: object) -> str:
    """A timeout or connection failure in a few words, without the URL (it holds keys)."""
    name = type(reason).__name__
    if "Timeout" in name:
        return "timed out"
    if isinstance(reason, ConnectionRefusedError) or "NewConnection" in name:
        return "connection refused or unreachable"
    if isinstance(reason, ConnectionResetError) or "Protocol" in name:
        return "connection reset"
    return name


def _backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the server's ``Retry-After``, else full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
    # Jitter only spreads the retries of many clients apart; it guards nothing.
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311  # nosec B311


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _json_default(value: Any) -> Any:
    """Key values JSON cannot say natively: decimals as numbers' text, dates as ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"cannot send a {type(value).__name__} key")

