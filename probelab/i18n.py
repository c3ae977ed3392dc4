"""The language a student or instructor reads: English by default, Korean on request.

Messages are marked in the source with `_()` (translate now), `_n()` (plural forms) or
`N_()` (mark a module-level constant; translate it with `_()` where it is shown), and
`lazy()` gives a text that translates each time it is turned into a string. Placeholders
use `str.format` fields, filled after translation, because an f-string cannot be
extracted: `_("{pod} restarted {count} times").format(pod=pod, count=count)`.

The Korean catalogue is `probelab/locale/ko/LC_MESSAGES/probelab.po` (gettext, kept with
Babel: `tox -e i18n` extracts, updates and compiles). It is compiled in memory the first
time it is needed, so a fresh checkout or install works without a build step.

The language comes from `--lang ko|en` (pytest and `probelab`), else from the locale the
way gettext reads it (the first set of LANGUAGE, LC_ALL, LC_MESSAGES, LANG): `ko` or
`ko_*` means Korean, anything else English.
"""

from __future__ import annotations

import functools
import gettext
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "probelab"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ko")
"""English is the source language; every other entry has a catalogue under LOCALE_DIR."""

_ENV_ORDER = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
_chosen: str | None = None


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def language_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """`ko` when the locale gettext would use is Korean, else `en`."""
    env = os.environ if environ is None else environ
    for name in _ENV_ORDER:
        value = env.get(name, "")
        if value:
            # LANGUAGE may list several (`ko:en`); the first one wins here as in gettext.
            # A locale is language[_territory][.codeset][@modifier]: `ko_KR.UTF-8`, `ko`.
            first = re.split(r"[_.@]", value.split(":", 1)[0], maxsplit=1)[0]
            return "ko" if first.lower() == "ko" else "en"
    return "en"


def set_language(language: str | None) -> None:
    """Use `language` (one of LANGUAGES) from now on; None goes back to the locale."""
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    global _chosen
    _chosen = language


def current_language() -> str:
    return _chosen if _chosen is not None else language_from_environment()


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language`, compiled from its .po file on first use."""
    if language == "en":
        return gettext.NullTranslations()
    # Imported here so that English, the default, needs nothing beyond the standard library.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with catalogue_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """`message` in the current language."""
    return translations(current_language()).gettext(message)


def _n(singular: str, plural: str, count: int) -> str:
    """The form of a message that fits `count`, in the current language."""
    return translations(current_language()).ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Mark `message` for translation without translating it (module-level constants)."""
    return message


class LazyText:
    """A message that is translated whenever it is shown, in the language of that moment."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return _(self.message)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"lazy({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyText) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)

    def format(self, *args: object, **kwargs: object) -> str:
        return str(self).format(*args, **kwargs)


def lazy(message: str) -> LazyText:
    """`message`, translated when it is turned into a string rather than now."""
    return LazyText(message)
