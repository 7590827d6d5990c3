"""Where rows go: Parquet files written whole or not at all, partitioned folders, rejects.

- :mod:`engine.sink.parquet`: :class:`~engine.sink.parquet.ParquetSink`, one Parquet file (or a
  rotation of them) with row groups buffered to a target size;
- :mod:`engine.sink.partitioned`: :class:`~engine.sink.partitioned.PartitionedSink`, one file
  per partition in Hive folders;
- :mod:`engine.sink.hive`: the text of Hive partition folder names;
- :mod:`engine.sink.rejects`: the rejects file.
"""
