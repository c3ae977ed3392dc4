"""``probelab predict``'s harness side: a manifest file in, the model's timelines out.

The model (:mod:`probelab.model`) knows pods, not files; this module reads the manifest's
pods, chooses each container's app, runs the model (once, or sampled into odds) and turns
model errors into the one-line errors every probelab command gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from probelab.errors import ProbelabError
from probelab.manifests import checked_object, containers_of, pod_spec_of, read_documents
from probelab.model.app import app_for
from probelab.model.errors import ModelError
from probelab.model.node import Node
from probelab.model.odds import MAX_SAMPLES, sample_pod, with_odds
from probelab.model.pods import PodUnderTest
from probelab.model.rules import Kubelet
from probelab.model.schema import Timelines
from probelab.model.simulate import AppFor, predict_pod

MAX_DURATION = 86_400.0
"""Longest window predict plays forward: a day."""


@contextmanager
def model_errors() -> Iterator[None]:
    """The model's refusals as probelab's one-line errors."""
    try:
        yield
    except ModelError as error:
        raise ProbelabError(str(error)) from None


def read_pods(path: Path) -> list[PodUnderTest]:
    """The pods a manifest creates; one clear error when it has none or no probe at all."""
    pods: list[PodUnderTest] = []
    kinds: list[str] = []
    for index, document in enumerate(read_documents(path), start=1):
        obj = checked_object(path, index, document)
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        kinds.append(label)
        spec = pod_spec_of(path, label, obj)
        if spec is None:
            continue
        if not spec.get("containers"):
            raise ProbelabError(f"{path}: {label} has no containers")
        list(containers_of(path, label, spec))  # each entry must be a mapping
        pods.append(PodUnderTest(obj["metadata"]["name"], spec, label))
    if not pods:
        found = ", ".join(kinds) or "no objects"
        raise ProbelabError(f"{path}: no Pod or pod template to model (found {found})")
    if not any(pod.has_probes() for pod in pods):
        names = ", ".join(p.source for p in pods)
        raise ProbelabError(f"{path}: {names} has no liveness, readiness or startup probe")
    return pods


def checked_duration(duration: float) -> float:
    """A window the model can play: positive, finite, at most a day."""
    if not 0 < duration <= MAX_DURATION:  # also false for nan
        raise ProbelabError(
            f"--duration must be between 0 and {MAX_DURATION:g} seconds, got {duration:g}"
        )
    return duration


def predict(
    path: Path,
    *,
    duration: float,
    apps: AppFor | None = None,
    kubelet: Kubelet | None = None,
    node: Node | None = None,
    samples: int = 0,
    seed: int = 0,
) -> Timelines:
    """The timelines of every pod in a manifest; with ``samples``, their odds too."""
    checked_duration(duration)
    if not 0 <= samples <= MAX_SAMPLES:
        raise ProbelabError(f"--samples must be between 0 and {MAX_SAMPLES}, got {samples}")
    kubelet = kubelet or Kubelet()
    apps = apps or app_for()
    pods = []
    with model_errors():
        for pod in read_pods(path):
            nominal = predict_pod(pod, duration=duration, apps=apps, node=node, kubelet=kubelet)
            if samples:
                paths = sample_pod(pod, duration=duration, apps=apps, samples=samples,
                                   seed=seed, node=node, kubelet=kubelet)  # fmt: skip
                nominal = with_odds(nominal, paths)
            pods.append(nominal)
    return Timelines("predict", duration, pods, kubelet.label)
