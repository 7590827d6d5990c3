"""Cold start of every Lambda handler: the import of its module, and its first AWS clients.

Issue 6's budget: importing a handler module (engine + pyarrow + Powertools) costs <= 0.35 s and
<= 80 MiB peak RSS. Each run is a fresh interpreter that imports ``lambda/<step>/handler.py`` the
way the Lambda runtime does (the handler's directory first on ``sys.path``), timing the import
with ``time.perf_counter`` and reading the peak RSS from ``/proc/self/status`` (``VmHWM``); it
then creates the AWS clients every step uses on its first invocation (boto3 loads there, not at
import) and reads the time and the peak again. Interpreter start-up is not in the import time;
its RSS (~11 MiB) is in the peak, as it is in Lambda's.

    python benchmarks/cold_start.py [--runs 7] [--layer build/layer.zip|DIR] [--json FILE]

Without ``--layer`` the handlers import from this environment (site-packages). With a layer built
for this machine (``chunkwise layer build --host``), they import from the layer's ``python/`` and
the runtime's boto3 (linked from this environment), in an isolated interpreter (``-I -S``), as in
Lambda. Medians of ``--runs``; runs alternate between handlers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20
BUDGET_SECONDS = 0.35
BUDGET_RSS = 80 * MiB
#: Imported only by the paths that need them: a handler import must not load any of them.
LAZY = ("ijson", "engine.enforce.aggregate", "engine.sizing", "engine.contract", "matplotlib",
        "typer",
        "rich", "click", "boto3", "botocore.session", "smart_open", "pandas",
        "aws_lambda_powertools.utilities.data_classes")
#: The clients each step creates on its first invocation (engine/aws/steps.py): every step records
#: its status in DynamoDB, the data steps read or write S3, the DLQ route sends to SQS.
STEP_CLIENTS = {"dlq_route": ("dynamodb", "sqs"), "error_handler": ("dynamodb",)}
DEFAULT_CLIENTS = ("s3", "dynamodb")
#: Where the Lambda runtime has its own boto3 (/var/runtime): linked from this environment.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")

CHILD = r"""
import json, sys, time
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
handler_dir, lazy, wanted = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
sys.path[:0] = [handler_dir, *sys.argv[4:]]
before = status("VmRSS")
start = time.perf_counter()
import handler
import_s = time.perf_counter() - start
import_peak = status("VmHWM")
loaded = [name for name in lazy if name in sys.modules]
start = time.perf_counter()
from engine.aws.clients import default_clients
clients = default_clients()
for name in wanted:
    getattr(clients, name)
clients_s = time.perf_counter() - start
print(json.dumps({"import_s": import_s, "import_peak": import_peak, "start_rss": before,
                  "loaded": loaded, "clients_s": clients_s, "clients_peak": status("VmHWM")}))
"""


def handlers() -> list[str]:
    """The step names: ``lambda/<step>/handler.py``."""
    return sorted(p.parent.name for p in (ROOT / "lambda").glob("*/handler.py"))


def lambda_env(step: str) -> dict[str, str]:
    """The environment a handler sees in Lambda (template.yaml), with no real AWS account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update({
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_LAMBDA_FUNCTION_NAME": f"chunkwise-{step}",
        "POWERTOOLS_SERVICE_NAME": step, "POWERTOOLS_METRICS_NAMESPACE": "chunkwise",
        "METADATA_TABLE": "chunkwise-files", "PROCESSED_BUCKET": "processed",
        "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        "CONTRACTS_URI": "s3://raw/_contracts/",
    })
    return env


def runtime_dir(dest: Path) -> Path:
    """A stand-in for /var/runtime: links to this environment's boto3 and its dependencies."""
    dest.mkdir(parents=True, exist_ok=True)
    for module in RUNTIME_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            raise SystemExit(f"{module} is not installed: needed to stand in for the runtime's")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = dest / source.name
        if not link.exists():
            link.symlink_to(source)
    return dest


def measure(step: str, layer: Path | None, runtime: Path | None) -> dict[str, object]:
    """One fresh interpreter importing ``step``'s handler: see :data:`CHILD`."""
    command = [sys.executable]
    extra: list[str] = []
    if layer is not None and runtime is not None:
        # -B: /opt is read-only in Lambda, so nothing compiled in one cold start helps the next.
        command += ["-I", "-S", "-B"]
        extra = [str(layer), str(runtime)]
    wanted = ",".join(STEP_CLIENTS.get(step, DEFAULT_CLIENTS))
    command += ["-c", CHILD, str(ROOT / "lambda" / step), ",".join(LAZY), wanted, *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=lambda_env(step),
                            cwd=ROOT / "lambda" / step, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"{step}: the import failed:\n{result.stderr}")
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def summarize(runs: list[dict[str, object]]) -> dict[str, object]:
    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]

    return {
        "runs": len(runs),
        "import_s": median("import_s"),
        "import_s_min": min(float(r["import_s"]) for r in runs),  # type: ignore[arg-type]
        "import_s_max": max(float(r["import_s"]) for r in runs),  # type: ignore[arg-type]
        "import_peak_mib": median("import_peak") / MiB,
        "start_rss_mib": median("start_rss") / MiB,
        "clients_s": median("clients_s"),
        "clients_peak_mib": median("clients_peak") / MiB,
        "lazy_loaded": sorted({name for r in runs for name in r["loaded"]}),  # type: ignore[attr-defined]
    }


def table(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "| handler | import s (median) | min-max | peak RSS MiB after import | lazy modules "
        "loaded | first invocation's AWS clients | + their s | peak RSS MiB with them |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step, r in results.items():
        lines.append(
            f"| {step} | {r['import_s']:.3f} | {r['import_s_min']:.3f}-{r['import_s_max']:.3f} | "
            f"{r['import_peak_mib']:.1f} | {', '.join(r['lazy_loaded']) or 'none'} | "  # type: ignore[arg-type]
            f"{', '.join(STEP_CLIENTS.get(step, DEFAULT_CLIENTS))} | {r['clients_s']:.3f} | "
            f"{r['clients_peak_mib']:.1f} |")
    return "\n".join(lines)


def versions() -> str:
    found = []
    for name in ("pyarrow", "numpy", "pydantic", "aws_lambda_powertools", "boto3"):
        spec = importlib.util.find_spec(name)
        if spec is not None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                found.append(f"{name} {version(name.replace('_', '-'))}")
            except PackageNotFoundError:
                pass
    return ", ".join(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler")
    parser.add_argument("--layer", type=Path, help="a layer zip or python/ directory built for "
                                                   "this machine (chunkwise layer build --host)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        layer = runtime = None
        if args.layer is not None:
            layer = args.layer
            if layer.suffix == ".zip":
                with zipfile.ZipFile(layer) as archive:
                    archive.extractall(Path(tmp) / "layer")
                layer = Path(tmp) / "layer" / "python"
            runtime = runtime_dir(Path(tmp) / "runtime")
        steps = handlers()
        raw: dict[str, list[dict[str, object]]] = {step: [] for step in steps}
        for _ in range(args.runs):
            for step in steps:
                raw[step].append(measure(step, layer, runtime))
        results = {step: summarize(runs) for step, runs in raw.items()}

    where = f"layer {args.layer}" if args.layer else f"environment {sys.prefix}"
    print(f"Cold start of the handlers: {args.runs} fresh interpreters each, from the {where}.")
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"{versions()}.\n")
    print(table(results))
    worst_s = max(float(r["import_s"]) for r in results.values())  # type: ignore[arg-type]
    worst_rss = max(float(r["import_peak_mib"]) for r in results.values())  # type: ignore[arg-type]
    lazy = sorted({n for r in results.values() for n in r["lazy_loaded"]})  # type: ignore[attr-defined]
    ok = worst_s <= BUDGET_SECONDS and worst_rss * MiB <= BUDGET_RSS and not lazy
    print(f"\nworst import {worst_s:.3f} s (budget {BUDGET_SECONDS}), worst peak "
          f"{worst_rss:.1f} MiB (budget {BUDGET_RSS / MiB:.0f}), lazy modules loaded: "
          f"{', '.join(lazy) or 'none'} -> {'within budget' if ok else 'OVER BUDGET'}")
    if args.json:
        args.json.write_text(json.dumps({"where": where, "results": results}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
