"""What both history benchmarks measure beside wall time (imported by the scripts next to it)."""

from __future__ import annotations

from pathlib import Path


def postgres_cpu_s(data_dir: Path) -> float:
    """CPU seconds of the postmaster and its live children (backends that exited are not counted)."""
    import psutil

    master = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
    total = 0.0
    for proc in [master, *master.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total
