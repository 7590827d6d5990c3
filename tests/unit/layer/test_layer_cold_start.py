"""Cold start: importing a handler adds little to its libraries and loads no path-specific module.

Each handler is imported in a fresh interpreter, as the Lambda runtime does, and the child reads
its own peak RSS (``VmHWM`` in ``/proc/self/status``; a new process image starts its own high
water mark). The bar is on what the engine adds: at most ``MAX_OWN_RSS`` over a fresh
interpreter that imports only the libraries every handler needs (pyarrow, its Parquet module,
numpy and Powertools). That floor depends on the wheels, not on the engine: with pyarrow 26.0.1
on x86_64 it is ~63 MiB on Python 3.11 and ~98 MiB on Python 3.13, whose libarrow maps 17 MiB
more of itself at import. Issue 6's 80 MiB budget for the whole import on Lambda is measured
with the built layer by ``benchmarks/cold_start.py``, which also reports the wall-clock time
(never asserted here). The modules that only some paths need must be absent after the import:
the JSON array reader's ijson, aggregation, sizing, the contract models (pydantic), the CLI's
typer and rich, matplotlib, and botocore (loaded with the first S3 client, on the first
invocation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MiB = 2**20
#: What importing a handler may add over :data:`FLOOR` (the engine's own modules).
MAX_OWN_RSS = 8 * MiB
HANDLERS = sorted(p.parent.name for p in (ROOT / "lambda").glob("*/handler.py"))
LAZY = ("ijson", "engine.readers.json_array", "engine.enforce.aggregate", "engine.sizing",
        "engine.contract", "pydantic", "yaml", "matplotlib", "typer", "rich", "click", "boto3",
        "smart_open", "pandas", "aws_lambda_powertools.utilities.data_classes", "engine.layer")

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
with open("/proc/self/status") as fh:
    peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
print(json.dumps({"peak": peak, "modules": sorted(sys.modules)}))
"""


#: A fresh interpreter with only the libraries every handler imports.
FLOOR = r"""
import json, os, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the handlers set it
import numpy, pyarrow, pyarrow.parquet, aws_lambda_powertools
from aws_lambda_powertools import Logger, Metrics
with open("/proc/self/status") as fh:
    peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
print(json.dumps({"peak": peak, "modules": sorted(sys.modules)}))
"""


def import_in_child(step: str, code: str = CHILD) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_SERVICE_NAME": step, "POWERTOOLS_METRICS_NAMESPACE": "chunkwise"})
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "lambda" / step)],
                            capture_output=True, text=True, env=env, timeout=120,
                            cwd=ROOT / "lambda" / step)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_every_step_has_a_handler() -> None:
    assert HANDLERS == ["dlq_route", "error_handler", "ingest", "output", "plan", "transform",
                        "validate"]


@pytest.mark.parametrize("step", HANDLERS)
def test_handler_import_peak_rss_and_lazy_modules(step: str) -> None:
    data = import_in_child(step)
    modules = set(data["modules"])  # type: ignore[arg-type]
    assert {"engine.aws.steps", "pyarrow", "aws_lambda_powertools"} <= modules
    loaded = sorted(name for name in LAZY if name in modules)
    assert loaded == [], f"{step}: imported at module load: {loaded}"
    peak = int(data["peak"])  # type: ignore[call-overload]
    floor = int(import_in_child(step, FLOOR)["peak"])  # type: ignore[call-overload]
    own = peak - floor
    print(f"{step}: peak {peak / MiB:.1f} MiB, libraries alone {floor / MiB:.1f} MiB")
    assert own <= MAX_OWN_RSS, f"{step}: the import adds {own / MiB:.1f} MiB to its libraries"


def test_lazy_paths_still_load_what_they_need() -> None:
    """The registry and the planner import the JSON array reader when a JSON array is met."""
    code = r"""
import sys, json
from engine.readers import READERS
from engine.readers.sampling import detect_format
before = "ijson" in sys.modules
fmt = detect_format("x.json", b'[{"a": 1}]')
reader = READERS[fmt]
from engine.readers import JsonArrayReader
print(json.dumps({"before": before, "fmt": fmt, "same": reader is JsonArrayReader,
                  "after": "ijson" in sys.modules, "keys": list(READERS),
                  "formats": {k: READERS[k].format for k in READERS}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {"before": False, "fmt": "json", "same": True, "after": True,
                    "keys": ["csv", "ndjson", "json", "parquet"],
                    "formats": {"csv": "csv", "ndjson": "ndjson", "json": "json",
                                "parquet": "parquet"}}
