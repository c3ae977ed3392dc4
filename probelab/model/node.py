"""What the node adds to kubelet's rules: latencies, each a nominal value and a range.

The nominal values are means measured on probelab's local cluster from kubelet's and
containerd's logs and the API (docs/predict.md, "Node latencies"); the ranges are where a
real node puts them: a relist-driven delay anywhere within one relist period, a requeue
jitter anywhere within its rule, a sync-loop pickup anywhere within one tick. ``predict``
uses the nominal values; ``--samples`` draws every latency from its range, independently
each time it occurs, to find the paths a real node can take.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from probelab.model.rules import RELIST_PERIOD, REQUEUE_JITTER, SYNC_TICK


@dataclass(frozen=True)
class Node:
    """Latencies in seconds (``jitter`` is a fraction of a requeue's wait)."""

    sandbox: float = 0.35  # probe workers start -> first container running
    create: float = 0.1  # a sync's stop returned -> next instance running
    notice: float = 0.6  # a container change -> kubelet's status shows it (PLEG relist)
    # a sync -> the next one, which waits for the next relist (1.00-1.14 s in
    # benchmarks/data/kubelet-log-readiness-backoff-20261202.md)
    follow_up: float = 1.05
    # 1.36+ (Kubelet.relists_on_demand): a start -> kubelet's status shows it, by the
    # on-demand relist of the sync that started it (first triggered probe 0.007-0.037 s,
    # mean 0.016, in benchmarks/data/node-latencies-20261204T200545Z.md)
    relisted: float = 0.015
    # 1.36+: that sync -> the next one, at the next periodic relist: anywhere within a period
    # (0.05-0.89 s, mean 0.52, same file); on every version, a startup pass at the startup
    # worker's first look -> the sync that makes the container Ready
    # (benchmarks/data/kubelet-log-started-carried-20261204.md: 0.62 s)
    relist_wait: float = 0.5
    publish: float = 0.05  # a probe result -> the API shows Ready
    check: float = 0.02  # an exit -> the back-off check in the same sync
    jitter: float = 0.25  # the pod worker's requeue jitter
    pickup: float = 0.5  # the sync loop's 1 s tick picking a due pod
    app_boot: float = 0.7  # the lab app: start -> uvicorn listening, pods starting alongside
    app_reboot: float = 0.25  # the same for a restarted instance, which boots alone
    app_stop: float = 0.25  # the lab app: SIGTERM -> exited
    app_exec: float = 0.2  # the lab app: an exec probe running python3
    pull: float = 0.5  # imagePullPolicy Always: asking the registry before each start
    first_pull: float = 2.0  # ... and the first pull, which the probe workers wait out
    second: float = 0.5  # a start's place within its wall-clock second (see simulate.py)
    # 1.35+ (Kubelet.carries_started), a chance, not seconds: a worker ticking in the very
    # instant the startup worker first looks at a restarted container reads kubelet's status
    # before that look resets the inherited Started (7 of 10 such ties on 1.35 and 1.36,
    # benchmarks/data/kubelet-log-started-carried-20261204.md)
    reads_before_reset: float = 0.7
    spread: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "sandbox": (0.2, 0.6),
            "create": (0.05, 0.2),
            "notice": (0.1, 0.1 + RELIST_PERIOD),
            "follow_up": (1.0, 1.15),
            "relisted": (0.004, 0.035),
            "relist_wait": (0.0, RELIST_PERIOD),
            "publish": (0.01, 0.3),
            "check": (0.0, 0.05),
            "jitter": (0.0, REQUEUE_JITTER),
            "pickup": (0.0, SYNC_TICK),
            "app_boot": (0.55, 1.0),
            "app_reboot": (0.2, 0.4),
            "app_stop": (0.2, 0.4),
            "app_exec": (0.15, 0.3),
            "pull": (0.2, 2.0),
            "first_pull": (0.0, 10.0),
            "second": (0.0, 1.0),
        },
        compare=False,
    )

    def latest(self) -> Node:
        """Every latency at the top of its range: a slow but healthy node."""
        slow: dict[str, Any] = {name: high for name, (_, high) in self.spread.items()}
        return replace(self, **slow)


class Latencies:
    """The latencies one run of the engine uses: nominal, or drawn from their ranges."""

    def __init__(self, node: Node, rng: random.Random | None = None) -> None:
        self.node = node
        self.rng = rng

    def happens(self, name: str) -> bool:
        """A race the node wins with the chance ``name``: nominally when it is the likelier
        side, else as drawn."""
        chance: float = getattr(self.node, name)
        return chance >= 0.5 if self.rng is None else self.rng.random() < chance

    def __call__(self, name: str) -> float:
        nominal: float = getattr(self.node, name)
        if self.rng is None or name not in self.node.spread:
            return nominal
        low, high = self.node.spread[name]
        return self.rng.uniform(low, high)
