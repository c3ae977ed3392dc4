"""The few lines a person reads after a run: the count, and every spec that did not pass."""

from probelab.conformance.results import PASSED, summary_line
from probelab.conformance.suite import SuiteOutcome
from probelab.i18n import _


def render(outcome: SuiteOutcome) -> str:
    lines = [
        _("{summary} in {seconds:.0f}s").format(
            summary=summary_line(outcome.specs), seconds=outcome.seconds
        )
    ]
    for spec in outcome.specs:
        if spec.state != PASSED:
            reason = spec.reason.replace("\n", " / ") or _("no reason reported")
            lines.append(f"  {spec.state.upper()}: {spec.name}: {reason}")
    for image, where in sorted(outcome.pull_failures.items()):
        lines.append(
            "  " + _("image {image} could not be pulled ({where})").format(image=image, where=where)
        )
    if not outcome.specs:
        lines.append(
            "  "
            + _("the suite reported no spec (ginkgo exited {code})").format(code=outcome.exit_code)
        )
    if outcome.left_behind:
        lines.append(
            "  "
            + _("deleted {count} namespaces the suite left behind").format(
                count=len(outcome.left_behind)
            )
        )
    lines.append(
        "  " + _("namespaces made: {count}, all deleted").format(count=len(outcome.made_namespaces))
    )
    lines.append("  " + _("JUnit: {path}").format(path=outcome.junit))
    return "\n".join(lines)


def succeeded(outcome: SuiteOutcome) -> bool:
    """Every spec in focus passed, and there was at least one."""
    return (
        outcome.exit_code == 0
        and bool(outcome.specs)
        and all(spec.state == PASSED for spec in outcome.specs)
    )
