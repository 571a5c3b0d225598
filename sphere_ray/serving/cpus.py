"""Pin a replica, and the engine processes it starts, to a set of CPU cores (CPU serving only).

On a CPU-only node every model competes for the same cores. ``cpus: "0"`` in a Serve app's args gives the
replica's user-code thread those cores (its event loop, and the engine processes it spawns, inherit them) and
binds vLLM-CPU's OpenMP threads to them, the way a GPU replica owns its device. Threads Ray started before
(its RPC and I/O threads) keep the cores the replica was started on. Leave it unset on GPU nodes.
"""

from __future__ import annotations

import os

__all__ = ["parse_cpus", "pin_to_cpus"]


def parse_cpus(spec: str) -> list[int]:
    """``"0"``, ``"0-3"``, ``"0,2,4-5"`` -> sorted core ids; a malformed or empty spec is a ``ValueError``."""
    cores: set[int] = set()
    try:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi or lo)
            if first < 0 or last < first:
                raise ValueError(part)
            cores.update(range(first, last + 1))
    except ValueError as e:
        raise ValueError(f"cpus: expected core ids such as '0', '0-3' or '0,2', got {spec!r}") from e
    return sorted(cores)


def pin_to_cpus(spec: str) -> list[int]:
    """Pin the calling thread to ``spec``'s cores and bind vLLM-CPU's threads to them.

    Threads and processes the calling thread starts later inherit the cores; threads already running do not.

    Returns:
        The core ids. A core this machine does not have is a ``ValueError``.
    """
    cores = parse_cpus(spec)
    available = set(range(os.cpu_count() or 1))
    if missing := sorted(set(cores) - available):
        raise ValueError(f"cpus: cores {missing} do not exist on this node (it has {sorted(available)})")
    os.sched_setaffinity(0, cores)
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
    os.environ["OMP_NUM_THREADS"] = str(len(cores))
    return cores
