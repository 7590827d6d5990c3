"""A dataset contract enforced on each chunk: validation, coercion, transforms, aggregation.

- :mod:`engine.enforce.stage`: the contract's stages for one pass, in order, with its thresholds;
- :mod:`engine.enforce.validate`: types, nulls, ranges, patterns and uniqueness, split into rows
  kept and :class:`~engine.readers.base.Reject` records;
- :mod:`engine.enforce.coerce`: text to a contract type, value by value where a batch fails;
- :mod:`engine.enforce.transforms`: the declarative steps on pyarrow.compute;
- :mod:`engine.enforce.enrich`: joins with a reference table;
- :mod:`engine.enforce.keys`: the one 64-bit hash of values and rows that keys are kept by;
- :mod:`engine.enforce.aggregate`: running group-by aggregates.
"""
