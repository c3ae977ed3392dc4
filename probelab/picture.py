"""A picture of a scenario's pods over time, drawn from its timeline.

One lane per pod: coloured bands for what `kubectl get pod -w` showed (starting, Ready,
running but not Ready, CrashLoopBackOff, ...), a numbered tick at every restart, and a
marker at every failed probe (liveness, readiness and startup apart), so that an
instructor sees at a glance which pod was killed, when, and why. The x axis counts
seconds from the first pod the scenario saw.

Its words follow the report's language. Korean needs a font with Hangul: matplotlib's own
DejaVu has none and would draw empty boxes. NanumGothic comes with the koreanize-matplotlib
wheel, on every system alike; should it be unreadable, the picture stays English and says
so once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from probelab import progress
from probelab.i18n import N_, _, current_language, translations
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

    label: str  # English, the msgid; shown in the picture's language
    colour: str


STARTING = Band(N_("starting (Pending, ContainerCreating, init)"), "#c7c7c7")
NOT_READY = Band(N_("running, not Ready"), "#f2d35e")
READY = Band(N_("Ready"), "#4caf50")
CRASH_LOOP = Band("CrashLoopBackOff", "#d62728")  # kubectl's word, which the tutorial keeps
PULL_FAILING = Band(N_("image pull failing"), "#ff7f0e")
EXITED = Band(N_("exited with an error (Error, OOMKilled)"), "#8c1c13")
COMPLETED = Band(N_("exited cleanly (Completed)"), "#1f77b4")
TERMINATING = Band(N_("Terminating"), "#555555")
BANDS = (STARTING, NOT_READY, READY, CRASH_LOOP, PULL_FAILING, EXITED, COMPLETED, TERMINATING)
RESTART = N_("restart")

# Failed probes, by the event message's first word: how each is marked and its legend entry.
PROBE_MARKERS = {
    "Liveness": ("x", "#b00020", N_("liveness probe failed")),
    "Readiness": ("v", "#e08a00", N_("readiness probe failed")),
    "Startup": ("^", "#6a3d9a", N_("startup probe failed")),
}
OTHER_PROBE = ("o", "#333333", N_("probe failed"))
HANGUL_SAMPLE = "재시작"  # every glyph a Korean picture needs is of this kind
FONT_DISTRIBUTION = "koreanize-matplotlib"
FONT_FILE = "koreanize_matplotlib/fonts/NanumGothic.ttf"


@dataclass(frozen=True)
class Words:
    """The language a picture is drawn in: its translations and the font for them."""

    text: Callable[[str], str]
    font: FontProperties


def has_glyphs(path: str, sample: str = HANGUL_SAMPLE) -> bool:
    """Whether the font file at `path` draws every character of `sample`."""
    try:
        charmap = font_manager.get_font(path).get_charmap()
    except (OSError, RuntimeError):  # unreadable or not a font FreeType knows
        return False
    return all(ord(c) in charmap for c in sample)


@functools.cache
def hangul_font() -> str | None:
    """The family name of a font with Hangul: NanumGothic, from the koreanize-matplotlib
    wheel (so no system package is needed); None when it cannot be read.

    The file is found through the package's metadata, never imported: importing it would
    switch matplotlib's default font for everything else drawn in the process."""
    try:
        path = str(metadata.distribution(FONT_DISTRIBUTION).locate_file(FONT_FILE))
    except metadata.PackageNotFoundError:
        return None
    if not has_glyphs(path):
        return None
    font_manager.fontManager.addfont(path)
    return str(FontProperties(fname=path).get_name())


@functools.cache
def _say_english_once() -> None:
    progress.say(
        _(
            "probelab: no font with Hangul found (reinstall probelab: its dependency "
            "koreanize-matplotlib carries one); the report's pictures are in English"
        )
    )


def words(language: str | None = None) -> Words:
    """The picture's language: `language`, else the current one; English when it is
    Korean and no font can draw Hangul (said once, never boxes in place of letters)."""
    chosen = language or current_language()
    if chosen != "en":
        family = hangul_font()
        if family is not None:
            return Words(translations(chosen).gettext, FontProperties(family=[family]))
        _say_english_once()
    return Words(translations("en").gettext, FontProperties())


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


def draw(
    timeline: Timeline, path: Path, *, scenario: str, end: datetime, language: str | None = None
) -> Path:
    """Write the picture of `scenario` as a PNG at `path` (pods up to `end`, when recording
    stopped), in `language` or the current one."""
    render(timeline, scenario=scenario, end=end, language=language).savefig(path, format="png")
    return path


def render(
    timeline: Timeline, *, scenario: str, end: datetime, language: str | None = None
) -> Figure:
    """The picture as a matplotlib Figure (what `draw` writes)."""
    said = words(language)
    font = said.font
    observations = timeline.pods()
    pods = list(dict.fromkeys(o.pod for o in observations))
    # A Figure without pyplot: no global state, no display, safe beside other threads.
    figure = Figure(dpi=DPI)
    axes = figure.subplots()
    legend_inches = 0.0
    if not pods:
        axes.text(
            0.5,
            0.5,
            said.text(N_("no pods seen")),
            ha="center",
            va="center",
            transform=axes.transAxes,
            fontproperties=font,
        )
        axes.set_axis_off()
    else:
        origin = min(o.at for o in observations)
        used: set[str] = set()
        for lane, pod in enumerate(reversed(pods)):
            used |= _draw_lane(axes, timeline, pod, lane, origin, end, said)
        axes.set_yticks(range(len(pods)), list(reversed(pods)), fontproperties=font)
        axes.set_ylim(-0.6, len(pods) - 0.4)
        axes.set_xlim(0, max(1.0, _seconds(end, origin)))
        axes.set_xlabel(said.text(N_("seconds since the first pod was seen")), fontproperties=font)
        axes.grid(axis="x", color="#e0e0e0", linewidth=0.8)
        axes.set_axisbelow(True)
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        legend_inches = _legend(figure, used, said)
    height = FRAME_INCHES + legend_inches + LANE_INCHES * max(1, len(pods))
    figure.set_size_inches(WIDTH_INCHES, height)
    title = said.text(N_("{scenario}: pods over time")).format(scenario=scenario)
    axes.set_title(title, loc="left", fontsize=12, fontweight="bold", fontproperties=font)
    figure.tight_layout(rect=(0, legend_inches / height, 1, 1))
    return figure


def _draw_lane(
    axes: Axes,
    timeline: Timeline,
    pod: str,
    lane: int,
    origin: datetime,
    end: datetime,
    said: Words,
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
                said.text(N_("restart {count}")).format(count=restarts),
                (x, lane + 0.36),
                xytext=(2, 1),
                textcoords="offset points",
                fontsize=7,
                va="bottom",
                fontproperties=said.font,
            )
            used.add(RESTART)
    for event in timeline.events(pod=pod, reason="Unhealthy"):
        kind = event.message.split(" ", 1)[0]
        marker, colour, _label = PROBE_MARKERS.get(kind, OTHER_PROBE)
        x = _seconds(event.at, origin)
        axes.plot(x, lane - 0.42, marker=marker, color=colour, markersize=6, linestyle="none")
        used.add(kind if kind in PROBE_MARKERS else "other")
    return used


def _legend(figure: Figure, used: set[str], said: Words) -> float:
    """A legend of what the picture shows, below it; returns the height it needs."""
    handles: list[Patch | Line2D] = [
        Patch(color=b.colour, label=said.text(b.label)) for b in BANDS if b.label in used
    ]
    if RESTART in used:
        handles.append(Line2D([], [], color="black", linewidth=1.6, label=said.text(RESTART)))
    for kind, (marker, colour, label) in [*PROBE_MARKERS.items(), ("other", OTHER_PROBE)]:
        if kind in used:
            handles.append(
                Line2D(
                    [], [], marker=marker, color=colour, linestyle="none", label=said.text(label)
                )
            )
    legend_font = said.font.copy()
    legend_font.set_size(8)
    figure.legend(
        handles=handles, loc="lower center", ncol=LEGEND_COLUMNS, prop=legend_font, frameon=False
    )
    rows = -(-len(handles) // LEGEND_COLUMNS)
    return LEGEND_ROW_INCHES * rows + 0.15
