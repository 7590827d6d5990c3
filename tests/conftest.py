"""Shared fixtures: fake AWS credentials, in-process moto, a loopback moto server, what the
memory-measured children import, and the benchmark scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import engine.io

_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_CLEARED_AWS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CA_BUNDLE",
    "MOTO_PORT",
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials in us-east-1; no endpoint override, no profile, no ~/.aws files."""
    for name, value in _FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    for name in _CLEARED_AWS:
        monkeypatch.delenv(name, raising=False)
    nowhere = tmp_path_factory.mktemp("no-aws-config")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    engine.io.reset_s3_client()


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    """In-process moto (``mock_aws``); yields a boto3 S3 client. The engine's client is reset."""
    import boto3
    from moto import mock_aws

    engine.io.reset_s3_client()
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")
    engine.io.reset_s3_client()


@pytest.fixture(scope="session")
def _moto_server_endpoint() -> Iterator[str]:
    """One ThreadedMotoServer for the session, bound to loopback on a free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server(
    _moto_server_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A clean moto server reached through ``AWS_ENDPOINT_URL``; yields the endpoint URL.

    The server lives for the session; each test gets its state reset and, for its own duration
    only, ``AWS_ENDPOINT_URL`` and ``MOTO_PORT`` pointing at it (so in-process ``mock_aws`` tests
    are never redirected to the server).
    """
    endpoint = _moto_server_endpoint
    port = endpoint.rsplit(":", 1)[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("MOTO_PORT", port)
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        response.read()
    engine.io.reset_s3_client()
    yield endpoint
    engine.io.reset_s3_client()


def _copy_small_writes(src: Path, dst: Path) -> None:
    """Copy the tree ``src`` to ``dst`` in 64 KiB writes (pip 23's size; what a read caches)."""
    def copy(a: str, b: str) -> None:
        with open(a, "rb") as fa, open(b, "wb") as fb:
            while block := fa.read(64 << 10):
                fb.write(block)
        shutil.copymode(a, b)

    shutil.copytree(src, dst, copy_function=copy, symlinks=True,
                    ignore=shutil.ignore_patterns("tests", "include", "__pycache__"))


@pytest.fixture(scope="session")
def measured_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the front of a memory-measured child's ``PYTHONPATH``; made once.

    - **No pandas.** pyarrow imports it, when installed, on the first conversion of Python values
      (+45 MiB). The Lambda layer has no pandas (docs/memory.md): a stub hides it.
    - **pyarrow and numpy from a copy written in 64 KiB writes** (their shared libraries are most
      of a conversion's file-backed RSS). A peak counts the libraries' pages mapped into the
      child, and how many a fault maps depends on how the files sit in the page cache: on Linux
      6.18 (ext4), pyarrow installed by pip 24 (Python 3.12/3.13's; large writes, cached in large
      folios) maps ~36 MiB more than the same bytes read from disk or installed by pip 23, with
      no change in the engine (docs/memory.md, Traps). The copy holds the installed bytes,
      cached as a read caches them, whatever the installer did.
    """
    import numpy
    import pyarrow

    root = tmp_path_factory.mktemp("measured-site")
    (root / "pandas").mkdir()
    (root / "pandas" / "__init__.py").write_text('raise ImportError("hidden by the tests")\n')
    for module in (pyarrow, numpy):
        site = Path(module.__file__).parent.parent
        for name in (module.__name__, f"{module.__name__}.libs"):  # .libs: auditwheel's
            if (site / name).is_dir():
                _copy_small_writes(site / name, root / name)
    return root


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], ModuleType]:
    """A loader of ``benchmarks/<name>.py`` (a script, not a package module)."""
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"chunkwise_bench_{name}",
                                                      benchmarks / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
