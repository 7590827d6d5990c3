"""Memory sizing and profiling: measure conversions in child processes, model Lambda, recommend.

- :mod:`engine.sizing.measure`: conversions in a child process (:mod:`engine.sizing.child`:
  INIT, a cold and a warm invocation); peak RSS from the kernel, an RSS timeline
  (memory-profiler), stage times, and a watchdog memory cap.
- :mod:`engine.sizing.model`: Lambda's CPU share, warm and cold duration and cost per memory
  setting, blended at a cold share, from measured CPU seconds and peak RSS; prices are data
  (:file:`prices.json`) with date and source.
- :mod:`engine.sizing.sweep`: ``chunkwise size``: file size x format x block size x threads,
  fits, a recommendation per size band, ``--verify`` and ``--apply``.
- :mod:`engine.sizing.profile`: ``chunkwise profile FILE``.
- :mod:`engine.sizing.remote`: the same model fed by invocations of a deployed function.
- :mod:`engine.sizing.apply`: write the chosen MemorySize into ``template.yaml`` and
  ``samconfig.toml``, keeping their comments and order.
- :mod:`engine.sizing.plot`: PNGs (matplotlib, imported only when plotting).

Nothing here is imported by the engine or the Lambda handlers.
"""
