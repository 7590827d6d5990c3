"""The datasets ``chunkwise gen`` writes, one module each: columns, value pools, rows and faults.

:data:`engine.gen.DATASETS` registers them by name.
"""
