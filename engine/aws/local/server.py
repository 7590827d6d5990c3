"""The local stack: the pipeline on moto's server, in a background process, between commands.

``chunkwise local up`` (:func:`up`) starts ``python -m engine.aws.local.server`` in a session of
its own. That process (:func:`serve`) runs moto's ``ThreadedMotoServer`` on 127.0.0.1 only,
creates the template's resources in it (:func:`engine.aws.local.stack.create`: buckets, table,
queue, Glue database, the per-file and the backfill state machines), and answers the state
machines' Lambda invocations with the real handlers, in its own process
(:func:`~engine.aws.local.sandbox.server_sandbox`). It writes what a client needs to find it
(port, pid, endpoint, resource names and ARNs) to ``<cache>/chunkwise/local/<port>.json``
(``$XDG_CACHE_HOME``, else ``~/.cache``) once it is ready, and removes the file when it stops
(SIGTERM or SIGINT: :func:`down`). Its log (the handlers' JSON lines) is
``<cache>/chunkwise/local/<port>.log``.

Two differences from a deployed stack: nothing starts an execution when an object lands (moto
has no EventBridge-to-Step Functions delivery; ``pipeline run --local`` and ``pipeline backfill
--local`` start them), and a handler reads the contracts afresh at every invocation, so a
contract uploaded with ``--contract`` applies to the next file at once (a warm Lambda reuses
what it loaded for up to ``engine.aws.routing.CACHE_SECONDS``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.aws.local.asl import FUNCTIONS, REGION
from engine.aws.local.lambdas import Handler, load_handler
from engine.aws.local.sandbox import handler_environment, server_sandbox
from engine.aws.local.stack import LOCAL_NAMES, create, handler_env

__all__ = ["answers", "down", "find", "running", "serve", "state_dir", "up"]

#: Seconds ``up`` waits for a new server to be ready (it imports pyarrow and the handlers).
READY_TIMEOUT = 120.0


def state_dir() -> Path:
    """Where local stacks leave their state and logs: ``<cache>/chunkwise/local``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "chunkwise" / "local"


def _state_path(port: int) -> Path:
    return state_dir() / f"{port}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def answers(info: dict[str, Any], timeout: float = 2.0) -> bool:
    """Whether a local stack's server answers (moto's own ``/moto-api/`` page)."""
    connection = http.client.HTTPConnection("127.0.0.1", int(info["port"]), timeout=timeout)
    try:
        connection.request("GET", "/moto-api/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def running() -> list[dict[str, Any]]:
    """The local stacks that are up, from their state files (stale files are removed)."""
    found: list[dict[str, Any]] = []
    directory = state_dir()
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(path.read_text(encoding="utf-8"))
            if _alive(int(info["pid"])):
                found.append(info)
            else:
                path.unlink(missing_ok=True)
    return found


def find(port: int | None = None) -> dict[str, Any]:
    """The running local stack (on ``port``, or the only one).

    Raises:
        LookupError: none is running (on that port), or several are and no port was given.
    """
    stacks = running()
    if port is not None:
        stacks = [s for s in stacks if int(s["port"]) == port]
    if not stacks:
        where = f" on port {port}" if port is not None else ""
        raise LookupError(f"no local stack is running{where}: start one with "
                          "`chunkwise local up`")
    if len(stacks) > 1:
        ports = ", ".join(str(s["port"]) for s in stacks)
        raise LookupError(f"several local stacks are running (ports {ports}): stop the others "
                          "with `chunkwise local down --port N`")
    return stacks[0]


def up(port: int = 0, *, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """Start a local stack in the background and return its state once it is ready.

    Args:
        port: the loopback port; 0 picks a free one.
        timeout: seconds to wait for it to be ready.

    Raises:
        RuntimeError: a stack already runs on ``port``, or the server did not start (its log's
            end is in the message).
    """
    if port and any(int(s["port"]) == port for s in running()):
        raise RuntimeError(f"a local stack already runs on port {port}")
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / f".starting-{os.getpid()}-{time.monotonic_ns()}.json"
    log_path = directory / f".starting-{os.getpid()}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.aws.local.server", "--port", str(port),
             "--ready", str(ready), "--log", str(log_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C, nor with this shell
        )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready.is_file():
                info: dict[str, Any] = json.loads(ready.read_text(encoding="utf-8"))
                return info
            if process.poll() is not None:
                break
            time.sleep(0.1)
        else:
            process.terminate()
            process.wait(10)
        tail = _tail(log_path)
        raise RuntimeError(f"the local stack did not start (exit {process.poll()}):\n{tail}")
    finally:
        ready.unlink(missing_ok=True)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return ""


def down(port: int | None = None, *, timeout: float = 30.0) -> list[int]:
    """Stop the local stack on ``port`` (every one when ``None``); the ports stopped.

    Raises:
        LookupError: no local stack runs on ``port``.
    """
    stacks = running()
    if port is not None:
        stacks = [s for s in stacks if int(s["port"]) == port]
        if not stacks:
            raise LookupError(f"no local stack is running on port {port}")
    stopped: list[int] = []
    for info in stacks:
        pid = int(info["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it, when this process started it
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _state_path(int(info["port"])).unlink(missing_ok=True)
        stopped.append(int(info["port"]))
    return stopped


def _fresh_contracts(handler: Handler) -> Handler:
    """The handler, reading the contracts afresh (a contract just uploaded applies at once)."""
    from engine.aws import routing

    def invoke(event: dict[str, Any], context: Any) -> Any:
        routing.clear_cache()
        return handler(event, context)

    return invoke


def serve(port: int, *, on_ready: Callable[[dict[str, Any]], None] | None = None,
          stop: threading.Event | None = None, log: str | None = None) -> None:
    """Run a local stack in this process until ``stop`` is set (or SIGTERM/SIGINT arrives).

    Args:
        port: the loopback port; 0 picks a free one.
        on_ready: called with the stack's state once it answers.
        stop: set it to stop the stack (default: a new event the signals set).
        log: the log file named in the state.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    endpoint = f"http://127.0.0.1:{port}"
    state_path = _state_path(port)
    try:
        with server_sandbox(port, quiet=True, memory_mb=1024, timeout_s=900.0) as dispatcher:
            made = create(lambda service: boto3.client(service, region_name=REGION))
            with handler_environment(handler_env(LOCAL_NAMES, made["queue_url"])):
                dispatcher.handlers = {name: _fresh_contracts(load_handler(step))
                                       for name, step in FUNCTIONS.items()}
                info = {"port": port, "pid": os.getpid(), "endpoint": endpoint,
                        "region": REGION, "names": LOCAL_NAMES, **made, "log": log,
                        "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
                state_path.parent.mkdir(parents=True, exist_ok=True)
                temporary = state_path.with_suffix(".tmp")
                temporary.write_text(json.dumps(info, indent=2), encoding="utf-8")
                temporary.replace(state_path)
                if on_ready is not None:
                    on_ready(info)
                stop.wait()
    finally:
        state_path.unlink(missing_ok=True)
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m engine.aws.local.server --port N --ready FILE``: the background process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready", type=Path, help="write the state here once ready")
    parser.add_argument("--log", help="this process's log file (renamed after the port)")
    args = parser.parse_args(argv)

    def ready(info: dict[str, Any]) -> None:
        if args.log:  # the log is named after the port, once there is one
            target = state_dir() / f"{info['port']}.log"
            with contextlib.suppress(OSError):
                Path(args.log).replace(target)
                info["log"] = str(target)
                _state_path(info["port"]).write_text(json.dumps(info, indent=2),
                                                     encoding="utf-8")
        if args.ready:
            temporary = args.ready.with_suffix(".tmp")
            temporary.write_text(json.dumps(info), encoding="utf-8")
            temporary.replace(args.ready)
        print(f"chunkwise local stack ready at {info['endpoint']}", flush=True)

    serve(args.port, on_ready=ready, log=args.log)


if __name__ == "__main__":
    main()
