"""When a lab ran on a student's own manifests (`--manifests DIR`) and failed: a hint.

The evidence (pods, events, previous logs) says what kubelet did; this says where in the
student's own YAML to look: which files were theirs, what `probelab lint` finds in them,
and how they differ from the shipped ones the lab passes with.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.lint import lint


def hint(names: list[str], student: Path, shipped: Path) -> str:
    """The hint for a failure of a scenario that used the student's `names`."""
    parts = [
        _(
            "This scenario ran your own {files} from {dir}; the lab passes with the shipped "
            "copies in {shipped}. Look at the probe settings first."
        ).format(files=", ".join(names), dir=student, shipped=shipped)
    ]
    for name in names:
        parts.append(_findings(student / name))
        diff = _difference(student / name, shipped / name)
        if diff:
            parts.append(_("How your {file} differs from the shipped one:").format(file=name))
            parts.append(diff)
    return "\n\n".join(part for part in parts if part)


def _findings(path: Path) -> str:
    try:
        findings = lint(path)
    except ProbelabError as error:
        return str(error)
    if not findings:
        return _("`probelab lint {file}` finds no probe mistake in it.").format(file=path.name)
    lines = [_("`probelab lint {file}` finds:").format(file=path.name)]
    lines += [f"  {finding.render()}" for finding in findings]
    return "\n".join(lines)


def _difference(student: Path, shipped: Path) -> str:
    if not shipped.is_file():
        return ""
    diff = difflib.unified_diff(
        shipped.read_text(encoding="utf-8", errors="replace").splitlines(),
        student.read_text(encoding="utf-8", errors="replace").splitlines(),
        fromfile=f"shipped/{shipped.name}",
        tofile=f"yours/{student.name}",
        lineterm="",
    )
    return "\n".join(diff)
