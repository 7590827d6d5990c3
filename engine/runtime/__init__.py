"""How the process runs a conversion: allocator, worker threads, stage timing, memory readings.

Nothing here is set by importing the engine: the CLI, the Lambda handlers and the sizing child
call :func:`engine.runtime.process.configure` at their entry points.
"""
