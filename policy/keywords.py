"""Inbound SMS keywords: is this message an opt-out, an opt-in, a help request, or none?

Pure functions over plain values (no I/O). The inbound path calls :func:`classify` on the
text of every inbound message and acts on the :class:`Classification` (DESIGN §3, §5).

Normalisation (:func:`normalise`), applied to messages and to keywords alike:

1. Unicode NFKC (full-width ``ＳＴＯＰ`` becomes ``STOP``, ligatures split), then case-fold.
2. Accents stripped (NFKD, then combining marks dropped): ``Arrêt`` → ``arret``,
   ``No más`` → ``no mas``. Invisible format characters (zero-width space, soft hyphen,
   joiners, BOM) and control characters are dropped too, so they cannot hide a STOP.
3. Curly quotes fold to straight ones, every dash to ``-``; dotless ``ı`` folds to ``i``.
4. Whitespace runs collapse to one space; everything that is not a letter or a digit is
   stripped from both ends (spaces, punctuation, quotes, emoji, symbols).
5. ``opt out`` / ``opt-out`` / ``optout`` fold to ``optout``; ``opt in`` / ``opt-in`` /
   ``optin`` to ``optin``; ``stop all`` / ``stop-all`` / ``stopall`` to ``stopall``.

Steps 1–3 repeat until nothing changes, so ``normalise`` is idempotent.

Matching (:class:`MatchMode`):

- ``WHOLE`` (default, as Twilio and RingCentral do): the normalised message must *be* a
  keyword. ``"Stop. Thank you"`` and ``"STOP PLEASE"`` are NONE, and so are the false
  positives users complain about (``"I'll stop by"``, ``"Cancel my appointment"``, ``"We
  have got to STOP this bill"``). Recognising plain-language revocations ("please stop
  sending these") is a separate classifier, not this module.
- ``FIRST_WORD`` (as AWS does): a message that is a keyword is that keyword, as in WHOLE;
  otherwise a message whose first word(s) are an opt-out, opt-out-all or help keyword
  matches it (``"Stop. Thank you"`` → opt_out, and also ``"Cancel my appointment"`` →
  opt_out: that is the price of the mode). Opt-in keywords only ever match the whole
  message — ``"Yes I'll be there"`` or ``"Go ahead"`` must not re-subscribe anyone.
  Words are runs of letters and digits, so ``"stopping"`` is not ``"stop"``. When several
  keywords match at the start, the stronger class wins (opt_out_all > opt_out > help), then
  the longer keyword: ``"stop all of them"`` is opt_out_all.

Default lists (:meth:`KeywordLists.default`) and the decisions behind them:

- opt_out (en): CTIA (STOP END CANCEL UNSUBSCRIBE QUIT), FCC 47 CFR 64.1200(a)(10) (also
  REVOKE, OPT OUT), Twilio (OPTOUT), Plivo (UNSUB), AWS (REMOVE, TD, OPT-OUT). TD comes
  from AWS's list (it abbreviates the Chinese 退订); it is tagged ``en`` because the language
  only chooses the reply, and replies exist in en/es/fr/pt.
- opt_out_all (en): STOPALL, STOP ALL (Telnyx). Twilio treats STOPALL as STOP; Stopgate
  writes the wildcard record for it (DESIGN §3).
- opt_in (en): the union of Twilio (START YES UNSTOP), RingCentral (START SUBSCRIBE RESUME
  CONTINUE UNSTOP) and Plivo (GO). CTIA's JOIN is *not* included: no carrier lifts its own
  block on JOIN, so recording an opt-in for it would put Stopgate's view at odds with the
  carrier's; it is also many programs' sign-up keyword. Add it by configuration if wanted.
- help (en): HELP, INFO.
- es: opt_out ALTO (Twilio's Spanish short-code guidelines), DETENER, SALIR, PARAR, CANCELAR,
  NO MAS, BAJA; opt_in INICIO (a documented Spanish reserved keyword) and COMENZAR ("to
  start"); help AYUDA. ALTA (sign up) is left out: a wrong opt-in is a violation while a
  wrong opt-out only costs a message, and "alta" is also a common adjective ("high").
- fr: opt_out ARRET, ARRETE and ARRETT (Twilio's French list; accents fold away); help AIDE
  (the Canadian mandatory keywords are STOP, ARRET, HELP, AIDE, INFO). No French opt-in:
  no carrier or industry list names one, and START works in every language.
- pt: opt_out PARAR, CANCELAR, SAIR; help AJUDA; no opt-in, for the same reason.
- A keyword shared by several languages (PARAR, CANCELAR: es and pt) takes the language
  listed first. The default order is en, es, fr, pt, so shared words are ``es``: Spanish is
  by far the most common second language among US recipients.
- A text listed under two classes resolves to the stronger class (opt_out_all > opt_out >
  help > opt_in), so an addition can never weaken an opt-out word; remove it first to
  reclassify it. :meth:`KeywordLists.shadowed` lists the entries that lost.
- The FCC per-se opt-out words (:data:`PROTECTED_OPT_OUT`) survive every configuration.
"""

from __future__ import annotations

import enum
import itertools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_LISTS",
    "PROTECTED_OPT_OUT",
    "Classification",
    "Keyword",
    "KeywordClass",
    "KeywordLists",
    "MatchMode",
    "classify",
    "normalise",
]


class KeywordClass(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_OUT_ALL = "opt_out_all"
    OPT_IN = "opt_in"
    HELP = "help"
    NONE = "none"


class MatchMode(enum.StrEnum):
    WHOLE = "whole"
    """The whole normalised message is the keyword (Twilio, RingCentral). The default."""
    FIRST_WORD = "first-word"
    """The message starts with an opt-out or help keyword (AWS); opt-in stays whole-only."""


# Lower rank wins when one text is listed under two classes, or when several keywords match
# the start of a message in FIRST_WORD mode.
_RANK: Mapping[KeywordClass, int] = {
    KeywordClass.OPT_OUT_ALL: 0,
    KeywordClass.OPT_OUT: 1,
    KeywordClass.HELP: 2,
    KeywordClass.OPT_IN: 3,
}
_FIRST_WORD_CLASSES = frozenset({KeywordClass.OPT_OUT_ALL, KeywordClass.OPT_OUT, KeywordClass.HELP})
_OPT_OUT_CLASSES = frozenset({KeywordClass.OPT_OUT_ALL, KeywordClass.OPT_OUT})
_LANGUAGE = re.compile(r"[a-z]{2,3}")

# --- Normalisation ------------------------------------------------------------------

_CHAR_FOLDS = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "′": "'",
        "`": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "‟": '"',
        "″": '"',
        "−": "-",  # minus sign (Sm); the dash punctuation (Pd) is folded below
        "ı": "i",  # dotless i, which case-folding keeps
    }
)
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
_PHRASE_FOLDS = (
    (re.compile(r"\bopt[\s_-]*out\b"), "optout"),
    (re.compile(r"\bopt[\s_-]*in\b"), "optin"),
    (re.compile(r"\bstop[\s_-]*all\b"), "stopall"),
)
_WORD = re.compile(r"[^\W_]+")


def _fold_chars(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    kept: list[str] = []
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category in _DROPPED_CATEGORIES or (category == "Cc" and not ch.isspace()):
            continue
        kept.append("-" if category == "Pd" else ch)
    return "".join(kept).translate(_CHAR_FOLDS)


_ASCII_FOLDS: Mapping[int, str] = {c: _fold_chars(chr(c)) for c in range(128)}
""":func:`_fold_chars` of each ASCII character: on ASCII text folding goes character by
character (nothing composes or decomposes), so one ``translate`` with this table gives what
``_fold_chars`` gives, and its result folds to itself (a unit test holds both)."""


def normalise(text: str) -> str:
    """The form messages and keywords are compared in (see the module notes).

    ``"  Stop.  "`` → ``"stop"``; ``"“STOP”"``, ``"STOP!!!"``, ``"stop 🛑"``, ``"ＳＴＯＰ"`` →
    ``"stop"``; ``"Arrêt"`` → ``"arret"``; ``"No más"`` → ``"no mas"``; ``"Opt-Out"`` →
    ``"optout"``; ``"stop all"`` → ``"stopall"``; ``" 🙂 "`` → ``""``.
    """
    if text.isascii():
        # Most messages: one table look-up per character instead of the Unicode passes.
        folded = text.translate(_ASCII_FOLDS)
    else:
        folded = text
        for _ in range(4):  # NFKC/case-fold/NFKD interact on a few characters; settle them
            again = _fold_chars(folded)
            if again == folded:
                break
            folded = again
    collapsed = " ".join(folded.split())
    start, end = 0, len(collapsed)
    while start < end and not collapsed[start].isalnum():
        start += 1
    while end > start and not collapsed[end - 1].isalnum():
        end -= 1
    result = collapsed[start:end]
    for pattern, replacement in _PHRASE_FOLDS:
        result = pattern.sub(replacement, result)
    return result


def _words(normalised: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(normalised))


# --- Keywords and lists -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keyword:
    """One keyword as listed: ``text`` as written (any case, accents, spacing), its class,
    and the language (ISO 639 code, 2–3 lower-case letters) its reply should be in."""

    text: str
    klass: KeywordClass
    language: str

    def __post_init__(self) -> None:
        klass = KeywordClass(self.klass)  # accepts the plain value, e.g. "opt_out"
        if klass is KeywordClass.NONE:
            raise ValueError(f"keyword {self.text!r}: NONE is not a keyword class")
        object.__setattr__(self, "klass", klass)
        if not normalise(self.text):
            raise ValueError(f"keyword {self.text!r} is empty once normalised")
        if not _LANGUAGE.fullmatch(self.language):
            raise ValueError(
                f"keyword {self.text!r}: language {self.language!r} is not a 2-3 letter code"
            )

    @property
    def key(self) -> str:
        """The normalised text: what a message is compared with."""
        return normalise(self.text)


def _kw(klass: KeywordClass, language: str, *texts: str) -> tuple[Keyword, ...]:
    return tuple(Keyword(text, klass, language) for text in texts)


_OUT, _ALL, _IN, _HELP = (
    KeywordClass.OPT_OUT,
    KeywordClass.OPT_OUT_ALL,
    KeywordClass.OPT_IN,
    KeywordClass.HELP,
)

PROTECTED_OPT_OUT: tuple[Keyword, ...] = _kw(
    _OUT, "en", "STOP", "QUIT", "END", "REVOKE", "OPT OUT", "CANCEL", "UNSUBSCRIBE"
)
"""FCC 47 CFR 64.1200(a)(10): these words revoke consent per se. Configuration cannot
remove them (``remove`` naming one is an error) and ``replace_defaults`` starts from them."""

_DEFAULT_KEYWORDS: tuple[Keyword, ...] = (
    *_kw(_ALL, "en", "STOPALL", "STOP ALL"),
    *PROTECTED_OPT_OUT,
    *_kw(_OUT, "en", "OPTOUT", "OPT-OUT", "UNSUB", "REMOVE", "TD"),
    *_kw(_IN, "en", "START", "YES", "UNSTOP", "SUBSCRIBE", "RESUME", "CONTINUE", "GO"),
    *_kw(_HELP, "en", "HELP", "INFO"),
    *_kw(_OUT, "es", "ALTO", "DETENER", "SALIR", "PARAR", "CANCELAR", "NO MÁS", "NO MAS"),
    *_kw(_OUT, "es", "BAJA"),
    *_kw(_IN, "es", "INICIO", "COMENZAR"),
    *_kw(_HELP, "es", "AYUDA"),
    *_kw(_OUT, "fr", "ARRÊT", "ARRET", "ARRÊTE", "ARRETE", "ARRETT"),
    *_kw(_HELP, "fr", "AIDE"),
    *_kw(_OUT, "pt", "PARAR", "CANCELAR", "SAIR"),
    *_kw(_HELP, "pt", "AJUDA"),
)

_CONFIG_CLASSES: Mapping[str, KeywordClass] = {
    klass.value: klass for klass in KeywordClass if klass is not KeywordClass.NONE
}
_CONFIG_SETTINGS = frozenset({"replace_defaults", "language", "remove"})


@dataclass(frozen=True, slots=True)
class KeywordLists:
    """The keywords in force. ``keywords`` keeps every entry as listed (spelling variants,
    shared words); a lookup by normalised text is built once, at construction.

    For one normalised text the strongest class wins (opt_out_all > opt_out > help >
    opt_in), then the entry listed first (which decides the language of shared words)."""

    keywords: tuple[Keyword, ...]
    _whole: Mapping[str, Keyword] = field(init=False, repr=False, compare=False)
    _prefix: Mapping[tuple[str, ...], tuple[str, Keyword]] = field(
        init=False, repr=False, compare=False
    )
    _max_words: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keywords = tuple(self.keywords)
        whole: dict[str, Keyword] = {}
        for keyword in keywords:
            if not isinstance(keyword, Keyword):
                raise TypeError(f"not a Keyword: {keyword!r}")
            key = keyword.key
            current = whole.get(key)
            if current is None or _RANK[keyword.klass] < _RANK[current.klass]:
                whole[key] = keyword
        prefix: dict[tuple[str, ...], tuple[str, Keyword]] = {}
        for key, keyword in whole.items():
            if keyword.klass not in _FIRST_WORD_CLASSES:
                continue
            words = _words(key)
            held = prefix.get(words)
            if words and (held is None or _RANK[keyword.klass] < _RANK[held[1].klass]):
                prefix[words] = (key, keyword)
        object.__setattr__(self, "keywords", keywords)
        object.__setattr__(self, "_whole", whole)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_max_words", max(map(len, prefix), default=0))

    @classmethod
    def default(cls) -> KeywordLists:
        """The built-in lists (see the module notes for what is in them and why)."""
        return cls(_DEFAULT_KEYWORDS)

    @classmethod
    def from_config(
        cls, config: Mapping[str, object], *, base: KeywordLists | None = None
    ) -> KeywordLists:
        """Lists from a configuration mapping (e.g. a ``[keywords]`` TOML table)::

            replace_defaults = false      # true: start from PROTECTED_OPT_OUT, not the defaults
            language = "en"               # language of the class lists at this level
            remove = ["YES"]              # dropped from the starting lists, any class/language
            opt_out = ["ENOUGH"]          # added; also opt_out_all, opt_in, help
            [keywords.es]                 # a per-language table: class lists only
            opt_out = ["BASTA"]

        The result is ``start.without(*remove).with_additions(*added)`` where ``start`` is
        ``base`` (the defaults when omitted), or :data:`PROTECTED_OPT_OUT` alone when
        ``replace_defaults`` is true. Class names may be spelt with ``-`` (``opt-out``).
        Unknown keys, non-list values, empty keywords, bad language codes and removal of a
        protected word raise ``ValueError``. Adding a word already listed under a stronger
        class leaves it there (see :meth:`shadowed`).
        """
        replace = config.get("replace_defaults", False)
        if not isinstance(replace, bool):
            raise ValueError("keywords.replace_defaults must be true or false")
        language = config.get("language", "en")
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise ValueError(f"keywords.language must be a 2-3 letter code, not {language!r}")
        remove = _string_list(config.get("remove", []), "keywords.remove")
        protected = {keyword.key for keyword in PROTECTED_OPT_OUT}
        for text in remove:
            if normalise(text) in protected:
                raise ValueError(
                    f"keywords.remove: {text!r} revokes consent per se (FCC 64.1200(a)(10)) "
                    "and cannot be removed"
                )
        added: list[Keyword] = []
        for name, value in config.items():
            if name in _CONFIG_SETTINGS:
                continue
            klass = _CONFIG_CLASSES.get(name.replace("-", "_"))
            if klass is not None:
                added.extend(_config_keywords(value, klass, language, f"keywords.{name}"))
            elif _LANGUAGE.fullmatch(name):
                if not isinstance(value, Mapping):
                    raise ValueError(f"keywords.{name} must be a table of keyword lists")
                for sub, texts in value.items():
                    sub_class = _CONFIG_CLASSES.get(str(sub).replace("-", "_"))
                    if sub_class is None:
                        raise ValueError(
                            f"keywords.{name}.{sub}: unknown; expected one of "
                            + ", ".join(sorted(_CONFIG_CLASSES))
                        )
                    added.extend(_config_keywords(texts, sub_class, name, f"keywords.{name}.{sub}"))
            else:
                raise ValueError(
                    f"keywords.{name}: unknown setting; expected "
                    + ", ".join(sorted(_CONFIG_SETTINGS | _CONFIG_CLASSES.keys()))
                    + ", or a language table such as keywords.es"
                )
        start = base if base is not None else cls.default()
        if replace:
            start = cls(PROTECTED_OPT_OUT)
        return start.without(*remove).with_additions(*added)

    def with_additions(self, *keywords: Keyword) -> KeywordLists:
        """These lists plus ``keywords`` (appended: existing entries keep precedence within
        a class; a stronger class still wins across classes)."""
        return KeywordLists((*self.keywords, *keywords))

    def without(self, *texts: str) -> KeywordLists:
        """These lists minus every entry (any class, any language) whose normalised text is
        that of one of ``texts``. Texts not listed are ignored."""
        keys: set[str] = set()
        for text in texts:
            key = normalise(text)
            if not key:
                raise ValueError(f"cannot remove {text!r}: empty once normalised")
            keys.add(key)
        return KeywordLists(tuple(k for k in self.keywords if k.key not in keys))

    def lookup(self, text: str) -> Keyword | None:
        """The entry a message consisting of exactly ``text`` matches, if any."""
        return self._whole.get(normalise(text))

    def shadowed(self) -> tuple[Keyword, ...]:
        """Entries that lost to the same text listed under a stronger class (worth a warning
        when configuration builds the lists)."""
        return tuple(k for k in self.keywords if self._whole[k.key].klass is not k.klass)

    def match_first_words(self, normalised: str) -> tuple[str, Keyword] | None:
        """The (key, entry) of the opt-out/help keyword the normalised text starts with:
        strongest class first, then the longest keyword."""
        words = tuple(
            m.group() for m in itertools.islice(_WORD.finditer(normalised), self._max_words)
        )
        best: tuple[str, Keyword] | None = None
        for length in range(len(words), 0, -1):
            found = self._prefix.get(words[:length])
            if found is not None and (best is None or _RANK[found[1].klass] < _RANK[best[1].klass]):
                best = found
        return best


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{where} must be a list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{where}[{index}] must be a string, not {item!r}")
    return tuple(value)


def _config_keywords(
    value: object, klass: KeywordClass, language: str, where: str
) -> list[Keyword]:
    keywords: list[Keyword] = []
    for index, text in enumerate(_string_list(value, where)):
        if not normalise(text):
            raise ValueError(f"{where}[{index}]: {text!r} is empty once normalised")
        keywords.append(Keyword(text, klass, language))
    return keywords


DEFAULT_LISTS = KeywordLists.default()


# --- Classification -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classification:
    """What a message is. ``keyword`` is the matched keyword in normalised form (``"stop"``,
    ``"stopall"``, ``"no mas"``); ``keyword`` and ``language`` are None for NONE.
    ``normalised`` is the whole normalised message."""

    klass: KeywordClass
    keyword: str | None
    language: str | None
    normalised: str

    @property
    def is_opt_out(self) -> bool:
        """opt_out or opt_out_all."""
        return self.klass in _OPT_OUT_CLASSES


def classify(
    text: str, lists: KeywordLists = DEFAULT_LISTS, mode: MatchMode = MatchMode.WHOLE
) -> Classification:
    """Classify an inbound message (see the module notes for the rules)."""
    mode = MatchMode(mode)
    normalised = normalise(text)
    keyword = lists._whole.get(normalised) if normalised else None
    if keyword is not None:
        return Classification(keyword.klass, normalised, keyword.language, normalised)
    if normalised and mode is MatchMode.FIRST_WORD:
        found = lists.match_first_words(normalised)
        if found is not None:
            key, keyword = found
            return Classification(keyword.klass, key, keyword.language, normalised)
    return Classification(KeywordClass.NONE, None, None, normalised)
