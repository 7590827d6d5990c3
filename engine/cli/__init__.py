"""The ``chunkwise`` command line, one module per group of commands.

:mod:`engine.cli.app` ties them together (the console script is ``engine.cli.app:main``).
"""
