"""What a command line tells the model: an exec probe's cost and outcome, uvicorn's port.

Only commands whose behaviour is certain are read; anything else is ``unknown`` and the
caller records an assumption instead of guessing silently.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

SHELLS = frozenset({"sh", "bash", "dash", "ash"})
PYTHONS = re.compile(r"python(3(\.\d+)?)?$")
_LOCAL_URL = re.compile(r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::(\d+))?(/[^\s'\"]*)?")
_NUMBER = re.compile(r"\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class ExecReading:
    """What an exec command does: ``kind`` is missing, sleep, get, exits or unknown."""

    kind: str
    seconds: float = 0.0  # sleep: how long before it exits 0
    port: int = 0  # get: the loopback URL it fetches
    path: str = "/"
    program: str = ""
    code: int = 0  # exits: its exit status


def program_name(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def read_exec(command: Sequence[object], missing: frozenset[str]) -> ExecReading:
    """Read an exec probe's argv; shells' ``-c`` scripts and ``python3 -c`` are read too."""
    words = [str(w) for w in command]
    if not words:
        return ExecReading("unknown")
    program = program_name(words[0])
    if program in missing:
        return ExecReading("missing", program=program)
    if program in SHELLS and len(words) >= 3 and words[1] == "-c":
        return _read_script(words[2], missing)
    if program == "sleep" and len(words) == 2 and _NUMBER.match(words[1]):
        return ExecReading("sleep", seconds=float(words[1]), program=program)
    if program in ("true", "false") and len(words) == 1:
        return ExecReading("exits", code=0 if program == "true" else 1, program=program)
    if PYTHONS.match(program) and len(words) >= 3 and words[1] == "-c":
        return _read_python(words[2], program)
    return ExecReading("unknown", program=program)


def _read_script(script: str, missing: frozenset[str]) -> ExecReading:
    """A one-command shell script (``sh -c "sleep 3"``) reads like that command."""
    if any(mark in script for mark in ";&|`$><\n"):
        return ExecReading("unknown", program="sh")
    try:
        words = shlex.split(script)
    except ValueError:
        return ExecReading("unknown", program="sh")
    return read_exec(words, missing)


def _read_python(source: str, program: str) -> ExecReading:
    """``python3 -c``: a loopback GET (urllib) or ``time.sleep(N)``, nothing else."""
    url = _LOCAL_URL.search(source)
    if url is not None and "urlopen" in source:
        return ExecReading("get", port=int(url[1] or 80), path=url[2] or "/", program=program)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ExecReading("unknown", program=program)
    sleeps = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "sleep"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, (int, float))
    ]
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    if sleeps and len(calls) == len(sleeps):
        return ExecReading("sleep", seconds=float(sum(sleeps)), program=program)
    return ExecReading("unknown", program=program)


def uvicorn_port(argv: Sequence[object]) -> int | None:
    """The ``--port`` of a uvicorn command line (``--port N`` or ``--port=N``), if any."""
    words = [str(w) for w in argv]
    if not any(program_name(w) == "uvicorn" for w in words[:3]):
        return None
    for index, word in enumerate(words):
        if word == "--port" and index + 1 < len(words) and words[index + 1].isdigit():
            return int(words[index + 1])
        if word.startswith("--port=") and word[7:].isdigit():
            return int(word[7:])
    return None
