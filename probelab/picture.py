"""A picture of a scenario's pods over time, drawn from its timeline.

One lane per pod: coloured bands for what `kubectl get pod -w` showed (starting, Ready,
running but not Ready, CrashLoopBackOff, ...), a numbered tick at every restart, and a
marker at every failed probe (liveness, readiness and startup apart), so that an
instructor sees at a glance which pod was killed, when, and why. The x axis counts
seconds from the first pod the scenario saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from probelab.timeline import PodObservation, Timeline

WIDTH_INCHES = 11.0
LANE_INCHES = 0.75
FRAME_INCHES = 1.2  # title and axis
LEGEND_ROW_INCHES = 0.25
LEGEND_COLUMNS = 4
DPI = 100


@dataclass(frozen=True)
class Band:
    """How one kind of pod state is drawn."""

    label: str
    colour: str


STARTING = Band("starting (Pending, ContainerCreating, init)", "#c7c7c7")
NOT_READY = Band("running, not Ready", "#f2d35e")
READY = Band("Ready", "#4caf50")
CRASH_LOOP = Band("CrashLoopBackOff", "#d62728")
PULL_FAILING = Band("image pull failing", "#ff7f0e")
EXITED = Band("exited with an error (Error, OOMKilled)", "#8c1c13")
COMPLETED = Band("exited cleanly (Completed)", "#1f77b4")
TERMINATING = Band("Terminating", "#555555")
BANDS = (STARTING, NOT_READY, READY, CRASH_LOOP, PULL_FAILING, EXITED, COMPLETED, TERMINATING)
RESTART = "restart"

# Failed probes, by the event message's first word, and how each is marked.
PROBE_MARKERS = {
    "Liveness": ("x", "#b00020"),
    "Readiness": ("v", "#e08a00"),
    "Startup": ("^", "#6a3d9a"),
}
OTHER_PROBE = ("o", "#333333")


def band_of(observation: PodObservation) -> Band:
    """The band for what the STATUS and READY columns showed at that moment."""
    status = observation.status
    if observation.terminating:
        return TERMINATING
    if status == "CrashLoopBackOff":
        return CRASH_LOOP
    if status in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
        return PULL_FAILING
    if status in ("Completed", "Succeeded"):
        return COMPLETED
    if status in ("Error", "OOMKilled", "Failed", "ContainerCannotRun", "StartError"):
        return EXITED
    if status == "Running":
        return READY if observation.ready else NOT_READY
    return STARTING


def _seconds(moment: datetime, origin: datetime) -> float:
    return (moment - origin).total_seconds()


def draw(timeline: Timeline, path: Path, *, title: str, end: datetime) -> Path:
    """Write the picture as a PNG at `path` (pods up to `end`, when recording stopped)."""
    observations = timeline.pods()
    pods = list(dict.fromkeys(o.pod for o in observations))
    # A Figure without pyplot: no global state, no display, safe beside other threads.
    figure = Figure(dpi=DPI)
    axes = figure.subplots()
    legend_inches = 0.0
    if not pods:
        axes.text(0.5, 0.5, "no pods seen", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    else:
        origin = min(o.at for o in observations)
        used: set[str] = set()
        for lane, pod in enumerate(reversed(pods)):
            used |= _draw_lane(axes, timeline, pod, lane, origin, end)
        axes.set_yticks(range(len(pods)), list(reversed(pods)))
        axes.set_ylim(-0.6, len(pods) - 0.4)
        axes.set_xlim(0, max(1.0, _seconds(end, origin)))
        axes.set_xlabel("seconds since the first pod was seen")
        axes.grid(axis="x", color="#e0e0e0", linewidth=0.8)
        axes.set_axisbelow(True)
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        legend_inches = _legend(figure, used)
    height = FRAME_INCHES + legend_inches + LANE_INCHES * max(1, len(pods))
    figure.set_size_inches(WIDTH_INCHES, height)
    axes.set_title(title, loc="left", fontsize=12, fontweight="bold")
    figure.tight_layout(rect=(0, legend_inches / height, 1, 1))
    figure.savefig(path, format="png")
    return path


def _draw_lane(
    axes: Axes, timeline: Timeline, pod: str, lane: int, origin: datetime, end: datetime
) -> set[str]:
    """Draw one pod's bands, restarts and failed probes; returns the legend entries used."""
    used: set[str] = set()
    seen = timeline.pods(pod)
    for current, following in zip(seen, [*seen[1:], None], strict=True):
        if current.deleted:
            continue
        stop = following.at if following is not None else end
        start, band = _seconds(current.at, origin), band_of(current)
        axes.broken_barh(
            [(start, max(0.0, _seconds(stop, origin) - start))],
            (lane - 0.3, 0.6),
            facecolors=band.colour,
            edgecolor="none",
        )
        used.add(band.label)
    restarts = 0
    for observation in seen:
        if observation.restarts > restarts:
            restarts = observation.restarts
            x = _seconds(observation.at, origin)
            axes.plot([x, x], [lane - 0.36, lane + 0.36], color="black", linewidth=1.6)
            axes.annotate(
                f"restart {restarts}",
                (x, lane + 0.36),
                xytext=(2, 1),
                textcoords="offset points",
                fontsize=7,
                va="bottom",
            )
            used.add(RESTART)
    for event in timeline.events(pod=pod, reason="Unhealthy"):
        kind = event.message.split(" ", 1)[0]
        marker, colour = PROBE_MARKERS.get(kind, OTHER_PROBE)
        x = _seconds(event.at, origin)
        axes.plot(x, lane - 0.42, marker=marker, color=colour, markersize=6, linestyle="none")
        used.add(kind if kind in PROBE_MARKERS else "other")
    return used


def _legend(figure: Figure, used: set[str]) -> float:
    """A legend of what the picture shows, below it; returns the height it needs."""
    handles: list[Patch | Line2D] = [
        Patch(color=b.colour, label=b.label) for b in BANDS if b.label in used
    ]
    if RESTART in used:
        handles.append(Line2D([], [], color="black", linewidth=1.6, label=RESTART))
    for kind, (marker, colour) in [*PROBE_MARKERS.items(), ("other", OTHER_PROBE)]:
        if kind in used:
            label = f"{kind} probe failed" if kind != "other" else "probe failed"
            handles.append(
                Line2D([], [], marker=marker, color=colour, linestyle="none", label=label)
            )
    figure.legend(
        handles=handles, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=8, frameon=False
    )
    rows = -(-len(handles) // LEGEND_COLUMNS)
    return LEGEND_ROW_INCHES * rows + 0.15
