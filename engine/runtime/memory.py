"""Memory readings of this process, from the kernel."""

from __future__ import annotations

import resource
import sys

__all__ = ["peak_rss_bytes", "reset_peak_rss", "rss_bytes"]


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, from the kernel.

    On Linux this is ``VmHWM``: ``ru_maxrss`` survives ``execve`` and so includes the RSS of the
    parent a child was forked from.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def rss_bytes() -> int:
    """Resident set size of this process now (``VmRSS``); 0 where ``/proc`` is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Start :func:`peak_rss_bytes` again from the current RSS; whether that was possible.

    Writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` (Linux 4.0 and later), so that
    a long-lived process (a warm Lambda, a local pipeline run) can measure one piece of work.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True
