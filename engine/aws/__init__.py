"""What the Lambdas of the serverless pipeline need, around the engine.

One module per concern (``docs/pipeline.md`` is the interface they implement):

- :mod:`engine.aws.settings`: the environment, as one frozen dataclass.
- :mod:`engine.aws.events`: the EventBridge S3 "Object Created" event → the initial state.
- :mod:`engine.aws.metadata`: the DynamoDB record of each file: claim, status, read.
- :mod:`engine.aws.routing`: which contract a key belongs to.
- :mod:`engine.aws.planning`: record-aligned byte ranges for the Map of large objects.
- :mod:`engine.aws.deadline`: stop with a retryable error before Lambda's timeout.
- :mod:`engine.aws.steps`: the functions the handlers call, one per state.
- :mod:`engine.aws.layout`: where a file's outputs go: the table location and beside it.
- :mod:`engine.aws.conversion`: converting a file or a range: time, memory, checksums.
- :mod:`engine.aws.evolution`: one schema per dataset: how a file's columns meet it.
- :mod:`engine.aws.glue_types`: Arrow types as Glue (Hive) column types, and back.
- :mod:`engine.aws.catalog`: the dataset's Glue Data Catalog table and its partitions.
- :mod:`engine.aws.commit`: what the output step commits: manifest, catalog, old versions.
- :mod:`engine.aws.failures`: the caught error, the FAILED record, the DLQ message.
- :mod:`engine.aws.observability`: Powertools Logger and Metrics shared by the handlers.
- :mod:`engine.aws.clients`: the AWS clients, kept for the process.

Around the pipeline rather than in it:

- :mod:`engine.aws.local`: the whole pipeline on moto, with the real handlers (no account).
- :mod:`engine.aws.remote`: start and follow an execution on a deployed stack.
- :mod:`engine.aws.executions`: one execution, read through the Step Functions API, as a result.

Submodules are imported on demand: ``import engine.aws`` loads nothing else.
"""

from __future__ import annotations

__all__ = [
    "catalog",
    "clients",
    "commit",
    "conversion",
    "deadline",
    "events",
    "evolution",
    "executions",
    "failures",
    "glue_types",
    "layout",
    "local",
    "metadata",
    "observability",
    "planning",
    "remote",
    "routing",
    "settings",
    "steps",
]
