"""A process told apart from a later one that got its PID: the kernel's start time for it.

A PID alone names a stranger once the process is gone and the number comes round again;
PID plus start time (`/proc/<pid>/stat`, field 22) names one process for good. The local
cluster's PID files and a run's Lease holder both rely on it.
"""

from pathlib import Path


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent's wait is missing
        return None
    return int(fields[19])
