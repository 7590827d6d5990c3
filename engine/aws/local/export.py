"""What a local run leaves to look at: the processed bucket and the catalog, copied to a folder.

:func:`export` writes every object of the local processed bucket under its key as a path
(``DIR/orders/country=FR/….parquet``, ``DIR/orders/_manifests/….manifest.json``), so the folder
reads as the bucket would (``pyarrow.dataset.dataset("DIR/orders", partitioning="hive")``, DuckDB's
``read_parquet('DIR/orders/**/*.parquet', hive_partitioning=true)``), and each table of the local
Glue database as ``DIR/_catalog/<database>/<table>.json``: the table as ``GetTable`` returns it and
its partitions (``_catalog`` starts with ``_``: readers of the folder skip it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["export"]


def export(pipe: Any, directory: str | os.PathLike[str]) -> dict[str, int]:
    """Copy the processed bucket and the catalog of a running local pipeline into ``directory``.

    Args:
        pipe: a :class:`~engine.aws.local.runner.LocalPipeline`, inside its ``with``.
        directory: created if missing; files already there are overwritten, others kept.

    Returns:
        ``{"objects": n, "tables": n}`` copied.

    Raises:
        ValueError: a key that would leave ``directory`` (``..`` segments).
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    s3, bucket = pipe.client("s3"), pipe.names["processed_bucket"]
    objects = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            target = (root / obj["Key"]).resolve()
            if root not in target.parents or obj["Key"].endswith("/"):
                raise ValueError(f"the key {obj['Key']!r} is not a path under {root}")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            objects += 1
    glue, database = pipe.client("glue"), pipe.names["database"]
    tables = 0
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
        for table in page.get("TableList", []):
            partitions = [
                {"values": p["Values"],
                 "location": (p.get("StorageDescriptor") or {}).get("Location")}
                for part_page in glue.get_paginator("get_partitions").paginate(
                    DatabaseName=database, TableName=table["Name"])
                for p in part_page.get("Partitions", [])]
            target = root / "_catalog" / database / f"{table['Name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"table": table, "partitions": partitions}, indent=2,
                                         default=str), encoding="utf-8")
            tables += 1
    return {"objects": objects, "tables": tables}
