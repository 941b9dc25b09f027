"""What the compiled loops' thread policy (``csrc/threads.h``) decides now, and from what.

The compiled loops split the batch into one block per torch thread and run the blocks on

    min(torch.get_num_threads(), CPUs in the affinity mask, ceil(cgroup CPU quota),
        CPUs left free by other processes' runnable threads)

threads, at least one (the machine sampled at most every 100 ms; the load term only with
``RNNKIT_LOAD_AWARE=1``, see ``csrc/threads.h`` for why it is opt-in). The blocks, and so the numbers, do not depend on the decision.
"""

from __future__ import annotations

import torch

from . import compiled

__all__ = ["FIELDS", "thread_policy"]

FIELDS = ("threads", "torch_threads", "online_cpus", "affinity_cpus", "quota_cpus", "running",
          "running_ours", "load_aware")


def thread_policy() -> dict[str, float | int | bool]:
    """A fresh sample of the machine and the policy's decision: ``threads`` (what the next loop
    runs on), ``torch_threads``, ``online_cpus``, ``affinity_cpus``, ``quota_cpus`` (0: no
    quota), ``running`` (runnable threads on the machine, -1 unknown or not sampled),
    ``running_ours`` (this process's), ``load_aware``. Needs the compiled library
    (:class:`~rnnkit._kernels.compiled.ExtensionUnavailable` otherwise)."""
    compiled.load()
    values = torch.ops.rnnkit.thread_policy()
    out: dict[str, float | int | bool] = {}
    for name, value in zip(FIELDS, values):
        out[name] = value if name == "quota_cpus" else (bool(value) if name == "load_aware"
                                                        else int(value))
    return out
