"""The few lines a person reads after a run: the count, and every spec that did not pass."""

from probelab.conformance.results import PASSED, summary_line
from probelab.conformance.suite import SuiteOutcome


def render(outcome: SuiteOutcome) -> str:
    lines = [f"{summary_line(outcome.specs)} in {outcome.seconds:.0f}s"]
    for spec in outcome.specs:
        if spec.state != PASSED:
            reason = spec.reason.replace("\n", " / ") or "no reason reported"
            lines.append(f"  {spec.state.upper()}: {spec.name}: {reason}")
    for image, where in sorted(outcome.pull_failures.items()):
        lines.append(f"  image {image} could not be pulled ({where})")
    if not outcome.specs:
        lines.append(f"  the suite reported no spec (ginkgo exited {outcome.exit_code})")
    if outcome.left_behind:
        lines.append(f"  deleted {len(outcome.left_behind)} namespaces the suite left behind")
    lines.append(f"  namespaces made: {len(outcome.made_namespaces)}, all deleted")
    lines.append(f"  JUnit: {outcome.junit}")
    return "\n".join(lines)


def succeeded(outcome: SuiteOutcome) -> bool:
    """Every spec in focus passed, and there was at least one."""
    return (
        outcome.exit_code == 0
        and bool(outcome.specs)
        and all(spec.state == PASSED for spec in outcome.specs)
    )
