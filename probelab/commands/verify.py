"""`probelab verify`: grade students' runs of the seed's lab, read-only, in text, JSON or JUnit.

One student is `--kube-context CTX --namespace NS`; many are `--contexts a,b,c` or
`--contexts-file FILE` (one `CONTEXT [NAMESPACE]` per line, `#` comments), all from one
kubeconfig, graded one after another into one summary. The exit code is 0 when every
student reaches the pass mark, 1 when one does not (or their cluster did not answer), and
2 for bad input.
"""

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from probelab import kube
from probelab.commands import Subparsers
from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.secrets import SECRETS
from probelab.verify import DEFAULT_PASS_MARK, RUBRIC, SEED_NAMESPACE, Grade, Student, verify

MAX_POINTS = sum(check.points for check in RUBRIC)


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "verify", help="grade a student's lab namespace (read-only)", description=__doc__
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--kube-context", help="the student's kubeconfig context")
    who.add_argument("--contexts", help="several students: comma-separated contexts")
    who.add_argument(
        "--contexts-file", type=Path, help="several students: a file of `CONTEXT [NAMESPACE]` lines"
    )
    parser.add_argument(
        "--namespace",
        default=SEED_NAMESPACE,
        help=f"the lab's namespace (default {SEED_NAMESPACE})",
    )
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: the usual one)")
    parser.add_argument(
        "--pass-mark",
        type=int,
        default=DEFAULT_PASS_MARK,
        help=f"points needed out of {MAX_POINTS} (default {DEFAULT_PASS_MARK})",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="text")
    parser.add_argument("-o", "--output", type=Path, help="write there instead of stdout")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if not 0 <= args.pass_mark <= MAX_POINTS:
        raise ProbelabError(f"--pass-mark must be between 0 and {MAX_POINTS}, got {args.pass_mark}")
    students = _students(args)
    # Every context is loaded before anyone is graded: a misspelt one is bad input.
    clients = [kube.api_client(args.kubeconfig, student.context) for student in students]
    try:
        grades = [verify(s, api) for s, api in zip(students, clients, strict=True)]
    finally:
        for api in clients:
            api.close()
    text = SECRETS.mask(FORMATS[args.format](grades, args.pass_mark))
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text)
        except OSError as error:
            raise ProbelabError(f"cannot write {args.output}: {error.strerror}") from error
    return 0 if all(g.passed(args.pass_mark) for g in grades) else 1


def _students(args: argparse.Namespace) -> list[Student]:
    if args.kube_context:
        return [Student(args.kube_context, args.namespace)]
    if args.contexts:
        names = [name.strip() for name in args.contexts.split(",") if name.strip()]
        if not names:
            raise ProbelabError("--contexts names no context")
        return [Student(name, args.namespace) for name in names]
    return parse_contexts_file(args.contexts_file, args.namespace)


def parse_contexts_file(path: Path, namespace: str) -> list[Student]:
    """`CONTEXT [NAMESPACE]` per line; blank lines and `#` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ProbelabError(f"cannot read {path}: {error.strerror}") from error
    students = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ProbelabError(f"{path}:{number}: expected `CONTEXT [NAMESPACE]`, got {line!r}")
        students.append(Student(fields[0], fields[1] if len(fields) == 2 else namespace))
    if not students:
        raise ProbelabError(f"{path} names no context")
    return students


# --- output formats ----------------------------------------------------------------------


def _verdict(grade: Grade, pass_mark: int) -> str:
    if grade.error is not None:
        return "ERROR"
    return "PASS" if grade.passed(pass_mark) else "FAIL"


def as_text(grades: Sequence[Grade], pass_mark: int) -> str:
    lines = []
    for grade in grades:
        who = f"{grade.student.context} / {grade.student.namespace}"
        lines.append(
            f"{who}: {grade.score}/{grade.total} {_verdict(grade, pass_mark)} "
            + _("(pass mark {mark})").format(mark=pass_mark)
        )
        if grade.error is not None:
            lines.append("  " + _("error: {error}").format(error=grade.error))
        for result in grade.results:
            mark = "PASS" if result.passed else "FAIL"
            lines.append(
                f"  [{mark}] {result.points:>2}/{result.max_points:<2} {result.id}: {result.title}"
            )
            lines.append(f"         {result.evidence}")
            if result.hint:
                lines.append("         " + _("hint: {hint}").format(hint=result.hint))
        lines.append("")
    if len(grades) > 1:
        rows = [("CONTEXT", "NAMESPACE", "SCORE", "RESULT")] + [
            (
                g.student.context,
                g.student.namespace,
                f"{g.score}/{g.total}",
                _verdict(g, pass_mark),
            )
            for g in grades
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines += [
            "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        passed = sum(g.passed(pass_mark) for g in grades)
        lines += [f"{passed}/{len(grades)} students reached the pass mark of {pass_mark}", ""]
    return "\n".join(lines)


def as_json(grades: Sequence[Grade], pass_mark: int) -> str:
    document: dict[str, Any] = {
        "pass_mark": pass_mark,
        "max_points": MAX_POINTS,
        "students": [
            {
                "context": g.student.context,
                "namespace": g.student.namespace,
                "score": g.score,
                "passed": g.passed(pass_mark),
                "error": g.error,
                "checks": [
                    {
                        "id": r.id,
                        "title": r.title,
                        "passed": r.passed,
                        "points": r.points,
                        "max_points": r.max_points,
                        "evidence": r.evidence,
                        "hint": r.hint,
                    }
                    for r in g.results
                ],
            }
            for g in grades
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def as_junit(grades: Sequence[Grade], pass_mark: int) -> str:
    """One testsuite per student, one testcase per check: what CI systems display."""
    root = ElementTree.Element("testsuites", name="probelab verify")
    for grade in grades:
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=f"{grade.student.context}/{grade.student.namespace}",
            tests=str(len(grade.results) or 1),
            failures=str(sum(not r.passed for r in grade.results)),
            errors=str(int(grade.error is not None)),
        )
        properties = ElementTree.SubElement(suite, "properties")
        facts = {"score": grade.score, "max_points": grade.total, "pass_mark": pass_mark}
        for name, value in facts.items():
            ElementTree.SubElement(properties, "property", name=name, value=str(value))
        classname = f"verify.{grade.student.context}.{grade.student.namespace}"
        if grade.error is not None:
            case = ElementTree.SubElement(suite, "testcase", classname=classname, name="reach")
            ElementTree.SubElement(case, "error", message=grade.error).text = grade.error
        for result in grade.results:
            case = ElementTree.SubElement(suite, "testcase", classname=classname, name=result.id)
            if not result.passed:
                failure = ElementTree.SubElement(case, "failure", message=result.hint or "")
                failure.text = result.evidence
            ElementTree.SubElement(
                case, "system-out"
            ).text = (
                f"{result.title}: {result.points}/{result.max_points} points\n{result.evidence}"
            )
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


FORMATS: dict[str, Callable[[Sequence[Grade], int], str]] = {
    "text": as_text,
    "json": as_json,
    "junit": as_junit,
}
