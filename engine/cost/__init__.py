"""``chunkwise cost``: the pipeline's monthly bill for a workload, from measured per-file figures.

- :mod:`engine.cost.stack`: what ``template.yaml`` declares that the bill depends on (memory,
  routing thresholds, the fixed monthly items, the budget).
- :mod:`engine.cost.measure`: ``--measure``: the local pipeline (moto) run once per route, its
  state transitions and AWS calls per file counted, written to ``profiles/cost.json`` with the
  stack and the sizing profiles' measurements.
- :mod:`engine.cost.prices`: the prices (:file:`prices.json`, with date and sources).
- :mod:`engine.cost.model`: the arithmetic: per file, per month, per line of the bill.
- :mod:`engine.cost.report`: the text against the ADRs' criteria, ``--json``, the plot.

Nothing here is imported by the engine or the Lambda handlers (it is left out of the layer).
"""
