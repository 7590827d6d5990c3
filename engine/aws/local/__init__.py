"""The pipeline on local AWS (moto): the real state machine, the real handlers, no account.

One module per concern:

- :mod:`engine.aws.local.asl`: the definition (where it is, rendering its ARNs) and the error
  names its ``Retry`` and ``Catch`` match.
- :mod:`engine.aws.local.lambdas`: the Lambda service of a local run (the real handlers,
  in-process, answering as the Python runtime does).
- :mod:`engine.aws.local.sandbox`: moto, fake credentials and the Lambda hook, set up and undone.
- :mod:`engine.aws.local.inputs`: settings as the handlers' environment, files as object keys.
- :mod:`engine.aws.local.stack`: the template's resources on local AWS (both state machines).
- :mod:`engine.aws.local.sfn_integration`: moto's Step Functions integration completed
  (``startExecution.sync:2``, the Map Run calls), for the backfill's child executions.
- :mod:`engine.aws.local.runner`: the resources, the executions and their results.
- :mod:`engine.aws.local.server`: the local stack that persists (``chunkwise local up``).
- :mod:`engine.aws.local.calls`: the handlers' AWS calls, recorded per function.
- :mod:`engine.aws.local.export`: the processed bucket and the catalog, copied to a folder.

Running the pipeline is what callers need from here; the modules are there for the rest.
"""

from __future__ import annotations

from engine.aws.local.runner import LocalPipeline, run_files, run_local

__all__ = ["LocalPipeline", "run_files", "run_local"]
