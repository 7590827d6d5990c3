"""``chunkwise gen``: seeded synthetic datasets, clean or with faults injected at known places."""

from engine.gen.core import (
    COMPRESSIONS,
    DATASETS,
    FAULT_KINDS,
    FORMATS,
    Dataset,
    Fault,
    GenReport,
    check_arguments,
    generate,
    infer_format,
)

__all__ = [
    "COMPRESSIONS",
    "DATASETS",
    "FAULT_KINDS",
    "FORMATS",
    "Dataset",
    "Fault",
    "GenReport",
    "check_arguments",
    "generate",
    "infer_format",
]
