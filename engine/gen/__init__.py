"""``chunkwise gen``: seeded synthetic datasets, clean or with faults injected at known places.

:mod:`engine.gen.core` writes them (:func:`generate`), :mod:`engine.gen.text` renders rows as
CSV, NDJSON or JSON, :mod:`engine.gen.faults` breaks some on purpose, and
:mod:`engine.gen.datasets` holds one module per dataset.
"""

from engine.gen.core import (
    DATASETS,
    Dataset,
    GenReport,
    check_arguments,
    generate,
    infer_format,
)
from engine.gen.faults import DIRTY_MAX, FAULT_KINDS, Fault

__all__ = [
    "DATASETS",
    "DIRTY_MAX",
    "FAULT_KINDS",
    "Dataset",
    "Fault",
    "GenReport",
    "check_arguments",
    "generate",
    "infer_format",
]
