"""Cold start: importing a handler module stays within 80 MiB and loads no path-specific module.

Each handler is imported in a fresh interpreter, as the Lambda runtime does, and the child reads
its own peak RSS (``VmHWM`` in ``/proc/self/status``; a new process image starts its own high
water mark). Wall-clock time is measured and reported by ``benchmarks/cold_start.py``, never
asserted here. The modules that only some paths need must be absent after the import: the JSON
array reader's ijson, aggregation, sizing, the contract models (pydantic), the CLI's typer and
rich, matplotlib, and boto3 with smart-open (created with the first client, on the first
invocation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20
MAX_IMPORT_RSS = 80 * MiB  # issue 6
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


def import_in_child(step: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_SERVICE_NAME": step, "POWERTOOLS_METRICS_NAMESPACE": "chunkwise"})
    result = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "lambda" / step)],
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
    assert peak <= MAX_IMPORT_RSS, f"{step}: peak RSS {peak / MiB:.1f} MiB after the import"


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
                    "keys": ["csv", "ndjson", "json"],
                    "formats": {"csv": "csv", "ndjson": "ndjson", "json": "json"}}
