"""kubelet's rules and constants that decide probe, kill and restart timing, per version.

Sources (kubernetes/kubernetes, read at v1.33 to v1.36; facts, not code):

* ``pkg/kubelet/kubelet.go``: container restart back-off starts at 10 s
  (``backOffPeriod``), doubles to 300 s (``MaxContainerBackOff``); its entries are
  forgotten 10 minutes after their last update (``backOffPeriod * 60`` garbage collection
  and ``flowcontrol`` ``IsExpired`` with ``2 * maxDuration``, never less than 600 s here).
* ``pkg/kubelet/kuberuntime/kuberuntime_container.go``: a kill gets the probe's
  ``terminationGracePeriodSeconds`` (GA in 1.25), else the pod's (default 30 s), never
  less than 2 s (``minimumGracePeriodInSeconds``).
* ``pkg/kubelet/pod_workers.go``: a pod whose sync ended in back-off is requeued; from
  1.35 at the back-off's expiry plus up to 50 % jitter of that wait (``completeWork`` with
  the ``BackOff`` error's remaining time), before that after the 10 s error back-off plus
  up to 50 % jitter. The requeue is picked up by the sync loop's 1 s ticker.
* ``pkg/kubelet/pleg/generic.go``: the generic PLEG relists every second; kubelet's status
  shows a container change one relist after it happened.
* ``pkg/kubelet/pleg/generic.go`` and ``kuberuntime_manager.go`` from 1.36:
  ``PLEGOnDemandRelist`` (beta, on by default, kubernetes/kubernetes#137362) relists a pod
  right after a sync that started one of its containers, so kubelet's status shows the start
  within milliseconds; a container's exit is still seen at the periodic relist.
* ``pkg/kubelet/kubelet_pods.go`` ``convertToAPIContainerStatuses`` and
  ``prober/prober_manager.go`` ``isContainerStarted`` from 1.35
  (``ChangeContainerStatusOnKubeletRestart`` deprecated and off by default): a running
  container's ``Started`` is copied from the previous status of the same container name,
  and counts while the startup worker holds no result for the new container. So an instance
  started in the sync that killed a started one is started at once, until the startup
  worker's first look at it resets its result (:mod:`.simulate`).
* ``pkg/features/kube_features.go``: ``KubeletCrashLoopBackOffMax`` (alpha 1.32, beta and
  on by default 1.35) lets ``crashLoopBackOff.maxContainerRestartPeriod`` lower the cap;
  ``ReduceDefaultCrashLoopBackOffDecay`` (alpha 1.33, off) starts at 1 s with a 60 s cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from probelab.model.errors import ModelError

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0
MIN_STOP_GRACE = 2.0
DEFAULT_GRACE = 30.0
"""terminationGracePeriodSeconds when the pod sets none (API default)."""
RESYNC_INTERVAL = 60.0
"""kubelet's sync frequency, which caps a back-off requeue."""
LEGACY_RETRY = 10.0
"""Before 1.35 a pod in back-off is retried after this error back-off."""
REQUEUE_JITTER = 0.5
"""pod_workers.go jitters a requeue by up to this fraction of its wait."""
RELIST_PERIOD = 1.0
"""The generic PLEG's relist period."""
SYNC_TICK = 1.0
"""The sync loop's ticker that picks up due pod workers."""

SUPPORTED = ((1, 33), (1, 34), (1, 35), (1, 36))
"""Minors whose rules were read; others borrow the nearest one's, saying so."""


@dataclass(frozen=True)
class Kubelet:
    """The kubelet version and settings that change the rules."""

    version: tuple[int, int] = (1, 35)
    backoff_initial: float = BACKOFF_INITIAL
    backoff_max: float = BACKOFF_MAX
    assumptions: tuple[str, ...] = field(default=())

    @classmethod
    def parse(
        cls, version: str, *, reduced_decay: bool = False, max_restart: float | None = None
    ) -> Kubelet:
        """``1.35`` or ``v1.35.4``; the CrashLoopBackOff feature gates, version-checked."""
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?", version.strip())
        if match is None:
            raise ModelError(f"kubelet version must look like 1.35 or v1.35.4, got {version!r}")
        asked = (int(match[1]), int(match[2]))
        if asked < (1, 20):
            raise ModelError(f"kubelet {version} predates startup probes (1.20); not modelled")
        rules = min(
            SUPPORTED, key=lambda known: abs(known[1] - asked[1]) + 100 * abs(known[0] - asked[0])
        )
        assumptions: tuple[str, ...] = ()
        if rules != asked:
            assumptions = (
                f"kubelet {asked[0]}.{asked[1]} is outside the versions whose rules were read "
                f"({_range()}); modelled with {rules[0]}.{rules[1]}'s rules",
            )
        initial, ceiling = BACKOFF_INITIAL, BACKOFF_MAX
        if reduced_decay:
            if asked < (1, 33):
                raise ModelError("ReduceDefaultCrashLoopBackOffDecay needs kubelet 1.33+")
            initial, ceiling = 1.0, 60.0
        if max_restart is not None:
            if asked < (1, 32):
                raise ModelError("maxContainerRestartPeriod needs kubelet 1.32+")
            if not 1 <= max_restart <= 300:
                raise ModelError("maxContainerRestartPeriod must be between 1 and 300 s")
            ceiling, initial = max_restart, min(initial, max_restart)
        return cls(rules, initial, ceiling, assumptions)

    @property
    def retries_at_expiry(self) -> bool:
        """1.35+: a pod in back-off is retried when its window ends, not every 10 s."""
        return self.version >= (1, 35)

    @property
    def relists_on_demand(self) -> bool:
        """1.36+: a start is seen by the on-demand relist of the sync that made it."""
        return self.version >= (1, 36)

    @property
    def carries_started(self) -> bool:
        """1.35+: a restarted container inherits the killed one's ``Started`` for a while."""
        return self.version >= (1, 35)

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def retry_wait(self, remaining: float) -> float:
        """The requeue wait, before jitter, of a sync that ended in back-off."""
        if self.retries_at_expiry:
            return min(max(remaining, 0.0), RESYNC_INTERVAL)
        return LEGACY_RETRY

    def grace(self, pod_grace: object, probe_grace: object) -> float:
        """The kill's grace period: the probe's, else the pod's, never under 2 s."""
        chosen = probe_grace if probe_grace is not None else pod_grace
        if chosen is None:
            chosen = DEFAULT_GRACE
        if isinstance(chosen, bool) or not isinstance(chosen, (int, float)) or chosen < 0:
            raise ModelError(f"terminationGracePeriodSeconds must be >= 0, got {chosen!r}")
        return max(float(chosen), MIN_STOP_GRACE)


def _range() -> str:
    low, high = SUPPORTED[0], SUPPORTED[-1]
    return f"{low[0]}.{low[1]} to {high[0]}.{high[1]}"
