"""The gettext catalogues: every marked message has its Korean, and the language is chosen
the way the README says (`--lang`, else a ko* locale, else English)."""

import configparser
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from probelab import i18n
from probelab.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def extraction_keywords() -> dict[str, Any]:
    """Babel's defaults plus the `--keyword=` options of tox's i18n env (one source)."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    keywords: dict[str, Any] = dict(DEFAULT_KEYWORDS)
    for spec in re.findall(r"--keyword=(\S+)", tox["testenv:i18n"]["commands"]):
        name, _, args = spec.partition(":")
        keywords[name] = tuple(int(a) for a in args.split(",")) if args else None
    return keywords


Msgid = str | tuple[str, ...]  # a plural message's id is (singular, plural)


def extracted() -> Iterator[tuple[str, Msgid]]:
    """(file:line, message) for every message marked in the source."""
    mapping = configparser.ConfigParser()
    mapping.read(ROOT / "babel.cfg")
    method_map = []  # babel.cfg's sections are `[method: glob]`
    for section in mapping.sections():
        method, glob = section.split(":", 1)
        method_map.append((glob.strip(), method.strip()))
    for filename, line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, keywords=extraction_keywords()
    ):
        yield f"{filename}:{line}", message


@pytest.fixture(scope="module")
def korean() -> dict[Msgid, tuple[str, ...]]:
    """msgid -> its msgstr forms, of the entries that count (translated and not fuzzy)."""
    with i18n.catalogue_path("ko").open("rb") as po:
        catalog = read_po(po, locale="ko")
    entries: dict[Msgid, tuple[str, ...]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        msgid = message.id if isinstance(message.id, str) else tuple(message.id or ())
        string = message.string
        forms = (string,) if isinstance(string, str) else tuple(str(f or "") for f in string or ())
        if all(forms):
            entries[msgid] = forms
    return entries


def test_every_marked_message_has_its_korean(korean: dict[Msgid, tuple[str, ...]]) -> None:
    found = list(extracted())
    assert found, "no marked messages at all: the extraction itself is broken"
    missing = [f"{where}: {message!r}" for where, message in found if message not in korean]
    assert not missing, (
        "untranslated (run `tox -e i18n`, then translate the empty msgstr in "
        f"{i18n.catalogue_path('ko').relative_to(ROOT)}):\n" + "\n".join(missing)
    )


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_translations_keep_the_placeholders(korean: dict[Msgid, tuple[str, ...]]) -> None:
    wrong = []
    for msgid, forms in korean.items():
        source = msgid[-1] if isinstance(msgid, tuple) else msgid
        wrong += [f"{msgid!r} -> {form!r}" for form in forms if _fields(form) != _fields(source)]
    assert not wrong, "a translation's {fields} differ from the English:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({}, "en"),
        ({"LANG": "ko_KR.UTF-8"}, "ko"),
        ({"LC_ALL": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}, "ko"),
        ({"LC_ALL": "C.UTF-8", "LANG": "ko_KR.UTF-8"}, "en"),  # the first one set decides
        ({"LANGUAGE": "ko:en", "LANG": "C"}, "ko"),
        ({"LANGUAGE": "", "LANG": "ko"}, "ko"),
        ({"LANG": "ko_KR@euro"}, "ko"),
        ({"LANG": "kok_IN.UTF-8"}, "en"),  # Konkani, not Korean
    ],
)
def test_language_from_the_locale(environ: dict[str, str], language: str) -> None:
    assert i18n.language_from_environment(environ) == language


@pytest.fixture
def restore_language() -> Iterator[None]:
    yield
    i18n.set_language(None)


@pytest.mark.usefixtures("restore_language")
def test_chosen_language_wins_over_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "ko_KR.UTF-8")
    assert i18n._("interrupted") == "중단됨"
    i18n.set_language("en")
    assert i18n._("interrupted") == "interrupted"
    i18n.set_language("ko")
    monkeypatch.setenv("LC_ALL", "C")
    lazy = i18n.lazy("interrupted")
    assert f"{lazy}" == "중단됨"
    i18n.set_language("en")
    assert str(lazy) == "interrupted"  # translated when shown, not when made


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        i18n.set_language("fr")


def test_cli_takes_lang() -> None:
    assert build_parser().parse_args(["--lang", "ko", "doctor"]).lang == "ko"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--lang", "fr", "doctor"])
