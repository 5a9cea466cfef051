"""Inbound keywords: normalisation, default lists, both match modes, configuration, properties."""

from __future__ import annotations

import dataclasses
import re
import string
import tomllib
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import policy.keywords as keywords_module
from policy.keywords import (
    DEFAULT_LISTS,
    PROTECTED_OPT_OUT,
    Classification,
    Keyword,
    KeywordClass,
    KeywordLists,
    MatchMode,
    classify,
    normalise,
)

W, F = MatchMode.WHOLE, MatchMode.FIRST_WORD
OUT, ALL, IN, HELP, NONE = (
    KeywordClass.OPT_OUT,
    KeywordClass.OPT_OUT_ALL,
    KeywordClass.OPT_IN,
    KeywordClass.HELP,
    KeywordClass.NONE,
)

# Every default entry as listed -> (normalised keyword, class, language).
EXPECTED_DEFAULTS: dict[str, tuple[str, KeywordClass, str]] = {
    "STOPALL": ("stopall", ALL, "en"),
    "STOP ALL": ("stopall", ALL, "en"),
    "STOP": ("stop", OUT, "en"),
    "QUIT": ("quit", OUT, "en"),
    "END": ("end", OUT, "en"),
    "REVOKE": ("revoke", OUT, "en"),
    "OPT OUT": ("optout", OUT, "en"),
    "CANCEL": ("cancel", OUT, "en"),
    "UNSUBSCRIBE": ("unsubscribe", OUT, "en"),
    "OPTOUT": ("optout", OUT, "en"),
    "OPT-OUT": ("optout", OUT, "en"),
    "UNSUB": ("unsub", OUT, "en"),
    "REMOVE": ("remove", OUT, "en"),
    "TD": ("td", OUT, "en"),
    "START": ("start", IN, "en"),
    "YES": ("yes", IN, "en"),
    "UNSTOP": ("unstop", IN, "en"),
    "SUBSCRIBE": ("subscribe", IN, "en"),
    "RESUME": ("resume", IN, "en"),
    "CONTINUE": ("continue", IN, "en"),
    "GO": ("go", IN, "en"),
    "HELP": ("help", HELP, "en"),
    "INFO": ("info", HELP, "en"),
    "ALTO": ("alto", OUT, "es"),
    "DETENER": ("detener", OUT, "es"),
    "SALIR": ("salir", OUT, "es"),
    "PARAR": ("parar", OUT, "es"),  # also pt; es is listed first
    "CANCELAR": ("cancelar", OUT, "es"),  # also pt; es is listed first
    "NO MÁS": ("no mas", OUT, "es"),
    "NO MAS": ("no mas", OUT, "es"),
    "BAJA": ("baja", OUT, "es"),
    "INICIO": ("inicio", IN, "es"),
    "COMENZAR": ("comenzar", IN, "es"),
    "AYUDA": ("ayuda", HELP, "es"),
    "ARRÊT": ("arret", OUT, "fr"),
    "ARRET": ("arret", OUT, "fr"),
    "ARRÊTE": ("arrete", OUT, "fr"),
    "ARRETE": ("arrete", OUT, "fr"),
    "ARRETT": ("arrett", OUT, "fr"),
    "AIDE": ("aide", HELP, "fr"),
    "SAIR": ("sair", OUT, "pt"),
    "AJUDA": ("ajuda", HELP, "pt"),
}

# --- The table ------------------------------------------------------------------------

TABLE: list[tuple[str, MatchMode, KeywordClass, str | None, str | None]] = [
    # STOP in many dresses
    ("STOP", W, OUT, "stop", "en"),
    ("stop", W, OUT, "stop", "en"),
    ("Stop", W, OUT, "stop", "en"),
    ("sToP", W, OUT, "stop", "en"),
    ("  Stop.  ", W, OUT, "stop", "en"),
    ("STOP!!!", W, OUT, "stop", "en"),
    ("stop?", W, OUT, "stop", "en"),
    ("Stop...", W, OUT, "stop", "en"),
    ("Stop…", W, OUT, "stop", "en"),
    ("“STOP”", W, OUT, "stop", "en"),
    ('"stop"', W, OUT, "stop", "en"),
    ("'stop'", W, OUT, "stop", "en"),
    ("‘Stop’", W, OUT, "stop", "en"),
    ("«STOP»", W, OUT, "stop", "en"),
    ("(stop)", W, OUT, "stop", "en"),
    ("*STOP*", W, OUT, "stop", "en"),
    ("Stop :)", W, OUT, "stop", "en"),
    ("stop 🛑", W, OUT, "stop", "en"),
    ("🛑STOP🛑", W, OUT, "stop", "en"),
    ("STOP 👍🏽", W, OUT, "stop", "en"),
    ("stop ❤️", W, OUT, "stop", "en"),
    ("✋ Stop ✋", W, OUT, "stop", "en"),
    ("ＳＴＯＰ", W, OUT, "stop", "en"),
    ("ｓｔｏｐ！", W, OUT, "stop", "en"),
    ("\tSTOP\n", W, OUT, "stop", "en"),
    ("STOP\r\n", W, OUT, "stop", "en"),
    ("\u00a0Stop\u3000", W, OUT, "stop", "en"),
    ("S\u200bTOP", W, OUT, "stop", "en"),
    ("S\u00adTOP", W, OUT, "stop", "en"),
    ("\ufeffSTOP", W, OUT, "stop", "en"),
    ("stop\u200d", W, OUT, "stop", "en"),
    ("Stop.", F, OUT, "stop", "en"),
    # The other English opt-out words
    ("End", W, OUT, "end", "en"),
    ("END.", W, OUT, "end", "en"),
    ("Cancel", W, OUT, "cancel", "en"),
    ("CANCEL!", W, OUT, "cancel", "en"),
    ("cancel 🙏", W, OUT, "cancel", "en"),
    ("Unsubscribe", W, OUT, "unsubscribe", "en"),
    ("UNSUBSCRIBE.", W, OUT, "unsubscribe", "en"),
    ("Quit", W, OUT, "quit", "en"),
    ("quit!!", W, OUT, "quit", "en"),
    ("Revoke", W, OUT, "revoke", "en"),
    ("REVOKE.", W, OUT, "revoke", "en"),
    ("OPTOUT", W, OUT, "optout", "en"),
    ("Opt out", W, OUT, "optout", "en"),
    ("opt-out", W, OUT, "optout", "en"),
    ("Opt-Out!", W, OUT, "optout", "en"),
    ("OPT OUT", W, OUT, "optout", "en"),
    ("opt  out", W, OUT, "optout", "en"),
    ("opt_out", W, OUT, "optout", "en"),
    ("Opt–out", W, OUT, "optout", "en"),
    ("opt‐out", W, OUT, "optout", "en"),
    ("Ｏｐｔ－Ｏｕｔ", W, OUT, "optout", "en"),
    ("unsub", W, OUT, "unsub", "en"),
    ("Unsub.", W, OUT, "unsub", "en"),
    ("Remove", W, OUT, "remove", "en"),
    ("REMOVE!", W, OUT, "remove", "en"),
    ("TD", W, OUT, "td", "en"),
    ("td.", W, OUT, "td", "en"),
    # STOP ALL
    ("STOPALL", W, ALL, "stopall", "en"),
    ("StopAll", W, ALL, "stopall", "en"),
    ("stop all", W, ALL, "stopall", "en"),
    ("STOP ALL!", W, ALL, "stopall", "en"),
    ("Stop-All", W, ALL, "stopall", "en"),
    ("stop  all", W, ALL, "stopall", "en"),
    ("stop_all", W, ALL, "stopall", "en"),
    ("stop—all", W, ALL, "stopall", "en"),
    ("ＳＴＯＰ ＡＬＬ", W, ALL, "stopall", "en"),
    ("“Stop all.”", F, ALL, "stopall", "en"),
    # Opt-in (whole message only)
    ("START", W, IN, "start", "en"),
    ("start", W, IN, "start", "en"),
    ("Start!", W, IN, "start", "en"),
    ("YES", W, IN, "yes", "en"),
    ("yes", W, IN, "yes", "en"),
    ("Yes.", W, IN, "yes", "en"),
    ("YES!!", W, IN, "yes", "en"),
    ("UNSTOP", W, IN, "unstop", "en"),
    ("unstop", W, IN, "unstop", "en"),
    ("SUBSCRIBE", W, IN, "subscribe", "en"),
    ("Subscribe", W, IN, "subscribe", "en"),
    ("RESUME", W, IN, "resume", "en"),
    ("Resume", W, IN, "resume", "en"),
    ("CONTINUE", W, IN, "continue", "en"),
    ("continue", W, IN, "continue", "en"),
    ("GO", W, IN, "go", "en"),
    ("Go!", W, IN, "go", "en"),
    ("go 👍", W, IN, "go", "en"),
    ("Yes", F, IN, "yes", "en"),
    ("START", F, IN, "start", "en"),
    ("Opt in", W, NONE, None, None),  # folded to "optin", but no provider lists it
    ("JOIN", W, NONE, None, None),  # CTIA's JOIN is deliberately not a default
    # Help
    ("HELP", W, HELP, "help", "en"),
    ("help?", W, HELP, "help", "en"),
    ("Help!", W, HELP, "help", "en"),
    ("HELP 🙏", W, HELP, "help", "en"),
    ("INFO", W, HELP, "info", "en"),
    ("info", W, HELP, "info", "en"),
    ("Info?", W, HELP, "info", "en"),
    # Spanish
    ("ALTO", W, OUT, "alto", "es"),
    ("Alto", W, OUT, "alto", "es"),
    ("DETENER", W, OUT, "detener", "es"),
    ("detener", W, OUT, "detener", "es"),
    ("SALIR", W, OUT, "salir", "es"),
    ("Salir.", W, OUT, "salir", "es"),
    ("PARAR", W, OUT, "parar", "es"),
    ("parar", W, OUT, "parar", "es"),
    ("CANCELAR", W, OUT, "cancelar", "es"),
    ("Cancelar", W, OUT, "cancelar", "es"),
    ("NO MAS", W, OUT, "no mas", "es"),
    ("No más", W, OUT, "no mas", "es"),
    ("NO MÁS", W, OUT, "no mas", "es"),
    ("no  mas", W, OUT, "no mas", "es"),
    ("¡No más!", W, OUT, "no mas", "es"),
    ("NO MA\u0301S", W, OUT, "no mas", "es"),  # decomposed accent
    ("BAJA", W, OUT, "baja", "es"),
    ("baja", W, OUT, "baja", "es"),
    ("INICIO", W, IN, "inicio", "es"),
    ("Inicio", W, IN, "inicio", "es"),
    ("COMENZAR", W, IN, "comenzar", "es"),
    ("AYUDA", W, HELP, "ayuda", "es"),
    ("ayuda", W, HELP, "ayuda", "es"),
    ("¿Ayuda?", W, HELP, "ayuda", "es"),
    ("ALTA", W, NONE, None, None),  # deliberately not a default opt-in
    # French
    ("ARRET", W, OUT, "arret", "fr"),
    ("Arrêt", W, OUT, "arret", "fr"),
    ("ARRÊT", W, OUT, "arret", "fr"),
    ("arret", W, OUT, "arret", "fr"),
    ("ARRETE", W, OUT, "arrete", "fr"),
    ("Arrête", W, OUT, "arrete", "fr"),
    ("ARRÊTÉ", W, OUT, "arrete", "fr"),
    ("ARRETT", W, OUT, "arrett", "fr"),
    ("« ARRÊT »", W, OUT, "arret", "fr"),
    ("AIDE", W, HELP, "aide", "fr"),
    ("Aide", W, HELP, "aide", "fr"),
    ("aide!", W, HELP, "aide", "fr"),
    # Portuguese (PARAR and CANCELAR are shared with Spanish: es)
    ("SAIR", W, OUT, "sair", "pt"),
    ("Sair", W, OUT, "sair", "pt"),
    ("AJUDA", W, HELP, "ajuda", "pt"),
    ("ajuda", W, HELP, "ajuda", "pt"),
    # What users complain about, and other near misses: NONE in WHOLE mode
    ("I'll stop by", W, NONE, None, None),
    ("I’ll stop by", W, NONE, None, None),
    ("Cancel my appointment", W, NONE, None, None),
    ("We have got to STOP this bill", W, NONE, None, None),
    ("stop sending me these", W, NONE, None, None),
    ("can't stop laughing", W, NONE, None, None),
    ("Stop. Thank you", W, NONE, None, None),  # carriers miss it too; revocation is later
    ("STOP PLEASE", W, NONE, None, None),
    ("please stop", W, NONE, None, None),
    ("please stop sending text reminders", W, NONE, None, None),
    ("Stop by at 5?", W, NONE, None, None),
    ("Stopping by later", W, NONE, None, None),
    ("stopped", W, NONE, None, None),
    ("nonstop", W, NONE, None, None),
    ("unstoppable", W, NONE, None, None),
    ("The end", W, NONE, None, None),
    ("end of story", W, NONE, None, None),
    ("Yes I'll be there", W, NONE, None, None),
    ("Go ahead", W, NONE, None, None),
    ("Help me with my order", W, NONE, None, None),
    ("info@example.com", W, NONE, None, None),
    ("STOP STOP", W, NONE, None, None),
    ("s t o p", W, NONE, None, None),
    ("S.T.O.P", W, NONE, None, None),
    ("ST0P", W, NONE, None, None),
    ("Quite", W, NONE, None, None),
    ("ending", W, NONE, None, None),
    ("Cancellation", W, NONE, None, None),
    ("no", W, NONE, None, None),
    ("más", W, NONE, None, None),
    ("opt", W, NONE, None, None),
    ("all", W, NONE, None, None),
    ("No, gracias", W, NONE, None, None),
    # Empty, blank, emoji-only, punctuation-only
    ("", W, NONE, None, None),
    ("   ", W, NONE, None, None),
    ("\u200b", W, NONE, None, None),
    ("🛑", W, NONE, None, None),
    ("🙂🙂", W, NONE, None, None),
    ("👍🏽", W, NONE, None, None),
    ("!!!", W, NONE, None, None),
    ("...", F, NONE, None, None),
    ("", F, NONE, None, None),
    ("🛑 🛑", F, NONE, None, None),
    # FIRST_WORD mode: opt-out and help at the start of a longer message
    ("Stop. Thank you", F, OUT, "stop", "en"),
    ("STOP PLEASE", F, OUT, "stop", "en"),
    ("stop sending me these", F, OUT, "stop", "en"),
    ("  stop!!! 🛑 now", F, OUT, "stop", "en"),
    ("ＳＴＯＰ ｐｌｅａｓｅ", F, OUT, "stop", "en"),
    ("Cancel my appointment", F, OUT, "cancel", "en"),  # the price of the mode
    ("Stop by at 5?", F, OUT, "stop", "en"),  # likewise
    ("TD bank called", F, OUT, "td", "en"),  # likewise
    ("Remove me from this list", F, OUT, "remove", "en"),
    ("Unsubscribe me", F, OUT, "unsubscribe", "en"),
    ("quit texting me", F, OUT, "quit", "en"),
    ("REVOKE consent", F, OUT, "revoke", "en"),
    ("end.", F, OUT, "end", "en"),
    ("Opt out please", F, OUT, "optout", "en"),
    ("opt-out of everything", F, OUT, "optout", "en"),
    ("stop's the word", F, OUT, "stop", "en"),
    ("stop all of them", F, ALL, "stopall", "en"),
    ("Stop all messages please", F, ALL, "stopall", "en"),
    ("STOPALL now", F, ALL, "stopall", "en"),
    ("Stop-all please", F, ALL, "stopall", "en"),
    ("No más mensajes", F, OUT, "no mas", "es"),
    ("no mas por favor", F, OUT, "no mas", "es"),
    ("Cancelar mi cita", F, OUT, "cancelar", "es"),
    ("Parar agora", F, OUT, "parar", "es"),
    ("Sair da lista", F, OUT, "sair", "pt"),
    ("Arrêt svp", F, OUT, "arret", "fr"),
    ("ARRÊTE de m'écrire", F, OUT, "arrete", "fr"),
    ("Help me with my order", F, HELP, "help", "en"),
    ("Info about opening hours?", F, HELP, "info", "en"),
    ("Ayuda por favor", F, HELP, "ayuda", "es"),
    ("HELP STOP", F, HELP, "help", "en"),  # only the start counts
    # FIRST_WORD mode: still NONE
    ("I'll stop by", F, NONE, None, None),
    ("We have got to STOP this bill", F, NONE, None, None),
    ("can't stop laughing", F, NONE, None, None),
    ("please stop", F, NONE, None, None),
    ("Stopping by later", F, NONE, None, None),
    ("Endless summer", F, NONE, None, None),
    ("unstoppable", F, NONE, None, None),
    ("No, gracias", F, NONE, None, None),
    ("Yes I'll be there", F, NONE, None, None),  # opt-in is whole-message only
    ("Go ahead", F, NONE, None, None),
    ("START please", F, NONE, None, None),
    ("Yes stop", F, NONE, None, None),
    ("Subscribe me to the newsletter", F, NONE, None, None),
    ("Helpful, thanks", F, NONE, None, None),
]


@pytest.mark.parametrize(("text", "mode", "klass", "keyword", "language"), TABLE)
def test_table(
    text: str, mode: MatchMode, klass: KeywordClass, keyword: str | None, language: str | None
) -> None:
    result = classify(text, mode=mode)
    assert (result.klass, result.keyword, result.language) == (klass, keyword, language)
    assert result.normalised == normalise(text)


def _fullwidth(text: str) -> str:
    return "".join(
        "\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text
    )


SPELLINGS: list[tuple[str, Callable[[str], str]]] = [
    ("as-listed", lambda t: t),
    ("lower", str.lower),
    ("title", str.title),
    ("padded", lambda t: f"  {t}.  "),
    ("curly-quotes", lambda t: f"“{t}”"),
    ("emoji", lambda t: f"{t} 🛑"),
    ("bangs", lambda t: f"{t}!!!"),
    ("full-width", _fullwidth),
    ("tab-newline", lambda t: f"\t{t.lower()}?\n"),
]
MATRIX = [
    pytest.param(spell(listed), mode, *expected, id=f"{listed}-{name}-{mode}")
    for listed, expected in EXPECTED_DEFAULTS.items()
    for name, spell in SPELLINGS
    for mode in (W, F)
]


@pytest.mark.parametrize(("text", "mode", "keyword", "klass", "language"), MATRIX)
def test_every_default_keyword_in_every_spelling(
    text: str, mode: MatchMode, keyword: str, klass: KeywordClass, language: str
) -> None:
    result = classify(text, mode=mode)
    assert (result.klass, result.keyword, result.language) == (klass, keyword, language)


def test_table_sizes() -> None:
    assert len(TABLE) >= 150
    assert len(MATRIX) == len(EXPECTED_DEFAULTS) * len(SPELLINGS) * 2


# --- Normalisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Stop.  ", "stop"),
        ("STOP!!!", "stop"),
        ("“STOP”", "stop"),
        ("stop 🛑", "stop"),
        ("ＳＴＯＰ", "stop"),
        ("Arrêt", "arret"),
        ("No más", "no mas"),
        ("opt-out", "optout"),
        ("Opt Out", "optout"),
        ("OPTOUT", "optout"),
        ("opt-in", "optin"),
        ("Opt In", "optin"),
        ("stop-all", "stopall"),
        ("Stop All", "stopall"),
        ("I’ll stop by", "i'll stop by"),
        ("“Stop” he said", 'stop" he said'),
        ("a  \t\n b", "a b"),
        ("🛑", ""),
        ("", ""),
        ("Straße", "strasse"),
        ("İNFO", "info"),
        ("ınfo", "info"),
        ("S\u200bTOP", "stop"),
        ("ﬁn", "fin"),
        ("nonstop all", "nonstop all"),
        ("stop allergy", "stop allergy"),
        ("opt into", "opt into"),
        ("adopt out", "adopt out"),
        ("please stop all the texts", "please stopall the texts"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


# --- Default lists --------------------------------------------------------------------


def test_default_lists_are_exactly_the_documented_ones() -> None:
    assert list(dict.fromkeys(k.text for k in DEFAULT_LISTS.keywords)) == list(EXPECTED_DEFAULTS)
    assert len(DEFAULT_LISTS.keywords) == len(EXPECTED_DEFAULTS) + 2
    assert Keyword("PARAR", OUT, "pt") in DEFAULT_LISTS.keywords  # listed, but es wins
    assert Keyword("CANCELAR", OUT, "pt") in DEFAULT_LISTS.keywords
    for listed, (key, klass, language) in EXPECTED_DEFAULTS.items():
        found = DEFAULT_LISTS.lookup(listed)
        assert found is not None
        assert (found.key, found.klass, found.language) == (key, klass, language)
    assert KeywordLists.default() == DEFAULT_LISTS
    assert DEFAULT_LISTS.shadowed() == ()


def test_default_lists_cover_every_source() -> None:
    sources = {
        OUT: "STOP END CANCEL UNSUBSCRIBE QUIT REVOKE OPTOUT UNSUB REMOVE TD ARRET OPT-OUT",
        ALL: "STOPALL",
        IN: "START YES UNSTOP SUBSCRIBE RESUME CONTINUE GO",
        HELP: "HELP INFO AYUDA AIDE AJUDA",
    }
    for klass, words in sources.items():
        for word in words.split():
            assert classify(word).klass is klass, word
    for phrase, klass in [("stop all", ALL), ("opt out", OUT), ("no mas", OUT)]:
        assert classify(phrase).klass is klass
    for word in ["DETENER", "SALIR", "PARAR", "CANCELAR", "BAJA", "ALTO", "ARRETE", "SAIR"]:
        assert classify(word).klass is OUT, word


def test_protected_words_are_the_fcc_list() -> None:
    assert {k.key for k in PROTECTED_OPT_OUT} == {
        "stop",
        "quit",
        "end",
        "revoke",
        "optout",
        "cancel",
        "unsubscribe",
    }
    assert all(k.klass is OUT for k in PROTECTED_OPT_OUT)


# --- Configuration --------------------------------------------------------------------


def test_config_adds_a_keyword() -> None:
    lists = KeywordLists.from_config({"opt_out": ["ENOUGH"]})
    assert classify("Enough!", lists) == Classification(OUT, "enough", "en", "enough")
    assert classify("Enough already", lists, F).klass is OUT
    assert classify("Enough already", lists, W).klass is NONE
    assert classify("STOP", lists).klass is OUT
    assert classify("yes", lists).klass is IN


def test_config_removes_a_keyword() -> None:
    lists = KeywordLists.from_config({"remove": ["YES"]})
    assert classify("YES", lists).klass is NONE
    assert classify("Yes!", lists, F).klass is NONE
    assert classify("START", lists).klass is IN
    assert DEFAULT_LISTS.lookup("yes") is not None  # the defaults are untouched


def test_config_adds_and_removes_together() -> None:
    lists = KeywordLists.from_config({"opt_out": ["ENOUGH"], "remove": ["YES", "GO"]})
    assert classify("enough", lists).klass is OUT
    assert classify("yes", lists).klass is NONE
    assert classify("go", lists).klass is NONE


def test_config_language_tables_and_hyphenated_names() -> None:
    lists = KeywordLists.from_config(
        {
            "es": {"opt-out": ["BASTA"], "opt_in": ["ALTA"]},
            "it": {"help": ["AIUTO"], "opt_out": ["FERMA"]},
            "opt-out-all": ["EVERYTHING STOP"],
        }
    )
    assert classify("¡Basta!", lists) == Classification(OUT, "basta", "es", "basta")
    assert classify("Alta", lists) == Classification(IN, "alta", "es", "alta")
    assert classify("aiuto", lists).language == "it"
    assert classify("FERMA", lists).klass is OUT
    assert classify("everything stop", lists).klass is ALL


def test_config_top_level_language_and_multi_word_keywords() -> None:
    lists = KeywordLists.from_config({"language": "fr", "help": ["AU SECOURS"]})
    assert classify("Au secours !", lists) == Classification(HELP, "au secours", "fr", "au secours")
    assert classify("au secours svp", lists, F).keyword == "au secours"
    assert classify("au revoir", lists, F).klass is NONE


def test_config_replace_defaults_keeps_the_protected_words() -> None:
    lists = KeywordLists.from_config({"replace_defaults": True, "opt_out": ["ENOUGH"]})
    for word in ("stop", "quit", "end", "revoke", "opt-out", "cancel", "unsubscribe", "enough"):
        assert classify(word, lists).klass is OUT, word
    for word in ("yes", "start", "help", "td", "stopall", "arret"):
        assert classify(word, lists).klass is NONE, word


@pytest.mark.parametrize("word", ["STOP", "stop", "opt-out", "OPTOUT", "Cancel"])
def test_config_cannot_remove_a_protected_word(word: str) -> None:
    with pytest.raises(ValueError, match="per se"):
        KeywordLists.from_config({"remove": [word]})


def test_config_cannot_weaken_an_opt_out_word_by_adding_it_elsewhere() -> None:
    lists = KeywordLists.from_config({"help": ["STOP"], "opt_in": ["QUIT"]})
    assert classify("STOP", lists).klass is OUT
    assert classify("QUIT", lists).klass is OUT
    assert set(lists.shadowed()) == {Keyword("STOP", HELP, "en"), Keyword("QUIT", IN, "en")}


def test_config_reclassifies_after_removal() -> None:
    lists = KeywordLists.from_config({"remove": ["INFO"], "opt_out": ["INFO"]})
    assert classify("info", lists).klass is OUT
    assert lists.shadowed() == ()


def test_config_base_and_empty_config() -> None:
    assert KeywordLists.from_config({}) == DEFAULT_LISTS
    base = KeywordLists(PROTECTED_OPT_OUT)
    lists = KeywordLists.from_config({"opt_out": ["ENOUGH"]}, base=base)
    assert classify("yes", lists).klass is NONE
    assert classify("enough", lists).klass is OUT


def test_config_from_toml() -> None:
    document = tomllib.loads(
        """
        [keywords]
        opt_out = ["ENOUGH", "Leave me alone"]
        remove = ["YES"]
        [keywords.es]
        opt_out = ["BASTA"]
        """
    )
    lists = KeywordLists.from_config(document["keywords"])
    assert classify("leave me ALONE!", lists).keyword == "leave me alone"
    assert classify("basta", lists).language == "es"
    assert classify("yes", lists).klass is NONE


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"opt_out": "ENOUGH"}, "list of strings"),
        ({"opt_out": [1]}, r"opt_out\[0\] must be a string"),
        ({"opt_out": ["!!!"]}, "empty"),
        ({"opt_out": ["   "]}, "empty"),
        ({"optout": ["ENOUGH"]}, "unknown setting"),
        ({"mode": "whole"}, "unknown setting"),
        ({"EN": {"opt_out": ["X"]}}, "unknown setting"),
        ({"language": "English"}, "2-3 letter"),
        ({"language": 5}, "2-3 letter"),
        ({"es": ["BASTA"]}, "table"),
        ({"es": {"stop": ["BASTA"]}}, "unknown"),
        ({"replace_defaults": "yes"}, "true or false"),
        ({"remove": "YES"}, "list of strings"),
        ({"remove": ["🛑"]}, "empty"),
    ],
)
def test_config_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeywordLists.from_config(config)


# --- The lists API --------------------------------------------------------------------


def test_with_additions_and_without() -> None:
    lists = DEFAULT_LISTS.with_additions(Keyword("ENOUGH", OUT, "en")).without("YES", "go!")
    assert classify("enough", lists).klass is OUT
    assert classify("yes", lists).klass is NONE
    assert classify("GO", lists).klass is NONE
    assert DEFAULT_LISTS.without("not a keyword") == DEFAULT_LISTS
    with pytest.raises(ValueError, match="empty"):
        DEFAULT_LISTS.without("...")


def test_without_removes_every_spelling_and_language() -> None:
    lists = DEFAULT_LISTS.without("cancelar", "no mas")
    assert classify("CANCELAR", lists).klass is NONE
    assert classify("No más", lists).klass is NONE
    assert not any(k.key in {"cancelar", "no mas"} for k in lists.keywords)


def test_stronger_class_wins_whatever_the_order() -> None:
    weak, strong = Keyword("INFO", HELP, "en"), Keyword("info", OUT, "en")
    for order in ((weak, strong), (strong, weak)):
        lists = KeywordLists(order)
        assert classify("Info", lists).klass is OUT
        assert lists.shadowed() == (weak,)


def test_shared_word_takes_the_first_listed_language() -> None:
    pt_first = KeywordLists((Keyword("PARAR", OUT, "pt"), Keyword("PARAR", OUT, "es")))
    assert classify("parar", pt_first).language == "pt"
    assert classify("parar").language == "es"
    assert classify("cancelar").language == "es"


def test_first_word_prefers_the_stronger_class_then_the_longer_keyword() -> None:
    lists = KeywordLists(
        (
            Keyword("STOP HELP", HELP, "en"),
            Keyword("STOP", OUT, "en"),
            Keyword("NO", OUT, "en"),
            Keyword("NO MAS", OUT, "es"),
        )
    )
    assert classify("stop help me", lists, F).klass is OUT  # opt-out over help
    assert classify("stop help", lists, F).klass is HELP  # a message that *is* a keyword
    assert classify("no mas gracias", lists, F).keyword == "no mas"  # longest
    assert classify("no gracias", lists, F).keyword == "no"
    assert classify("stop all of it", DEFAULT_LISTS, F).klass is ALL


def test_lookup() -> None:
    found = DEFAULT_LISTS.lookup("“Stop!”")
    assert found == Keyword("STOP", OUT, "en")
    assert found.key == "stop"
    assert DEFAULT_LISTS.lookup("stop please") is None


def test_keyword_validation() -> None:
    assert Keyword("x", "opt_out", "en").klass is OUT  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Keyword("x", "bogus", "en")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NONE"):
        Keyword("x", NONE, "en")
    for text in ("", "   ", "🛑", "?!"):
        with pytest.raises(ValueError, match="empty"):
            Keyword(text, OUT, "en")
    for language in ("english", "EN", "", "e"):
        with pytest.raises(ValueError, match="language"):
            Keyword("x", OUT, language)
    with pytest.raises(TypeError):
        KeywordLists(("STOP",))  # type: ignore[arg-type]


def test_values_are_frozen_and_hashable() -> None:
    result = classify("stop")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.klass = NONE  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LISTS.keywords = ()  # type: ignore[misc]
    assert len({DEFAULT_LISTS, KeywordLists.default()}) == 1
    assert hash(result) == hash(classify("STOP"))
    assert KeywordLists([Keyword("STOP", OUT, "en")]).keywords == (Keyword("STOP", OUT, "en"),)  # type: ignore[arg-type]


def test_mode_values_and_is_opt_out() -> None:
    assert classify("stop now", mode="first-word").klass is OUT  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        classify("stop", mode="fuzzy")  # type: ignore[arg-type]
    assert classify("stop").is_opt_out
    assert classify("stop all").is_opt_out
    assert not classify("help").is_opt_out
    assert not classify("hello").is_opt_out
    assert classify("hello") == Classification(NONE, None, None, "hello")


# --- Properties -----------------------------------------------------------------------

LISTED = sorted(EXPECTED_DEFAULTS)
WORD = re.compile(r"[^\W_]+")
KEYWORD_WORDS = frozenset(word for key, _, _ in EXPECTED_DEFAULTS.values() for word in key.split())


def _is_decoration(ch: str) -> bool:
    return normalise(ch) == "" and not any(c.isalnum() for c in unicodedata.normalize("NFKC", ch))


DECORATION = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \t\n.,!?;:'\"“”‘’«»()[]*~…🛑🙏👍❤️😀✋🏽\u200b\u00a0\u3000")),
        st.characters(
            categories=("Po", "Ps", "Pe", "Pi", "Pf", "Pd", "Sm", "So", "Sk", "Sc", "Zs")
        ).filter(_is_decoration),
    ),
    max_size=6,
)


@settings(max_examples=300)
@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


@given(
    st.text(
        alphabet=st.sampled_from(list("StopALL nmásêÊ-–_.!'’“”🛑ＳＴＯＰ\u0301\u200b\t ßİı")),
        max_size=20,
    )
)
def test_normalise_is_idempotent_near_keywords(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


@given(st.one_of(st.text(), st.sampled_from(LISTED)), st.sampled_from([W, F]))
def test_classifying_the_normalised_text_changes_nothing(text: str, mode: MatchMode) -> None:
    assert classify(normalise(text), mode=mode) == classify(text, mode=mode)


@given(st.sampled_from(LISTED), DECORATION, DECORATION, st.sampled_from([W, F]))
def test_decoration_keeps_the_class(listed: str, before: str, after: str, mode: MatchMode) -> None:
    key, klass, language = EXPECTED_DEFAULTS[listed]
    result = classify(before + listed + after, mode=mode)
    assert (result.klass, result.keyword, result.language) == (klass, key, language)


@given(st.sampled_from(LISTED), st.data())
def test_case_changes_keep_the_class(listed: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(listed), max_size=len(listed)))
    text = "".join(ch.upper() if up else ch.lower() for ch, up in zip(listed, flips, strict=True))
    key, klass, _ = EXPECTED_DEFAULTS[listed]
    assert (classify(text).klass, classify(text).keyword) == (klass, key)


AFFIX = st.text(alphabet=string.ascii_lowercase + "áñ", min_size=1, max_size=3)
PLAIN_WORD = st.text(alphabet=string.ascii_letters + "áéñü'", min_size=1, max_size=10)
# Words that contain a keyword without being one: "stopx", "xcancel", "unstopping" ...
NEAR_WORD = st.builds(
    lambda before, word, after, where: (
        (before if where != 1 else "") + word + (after if where != 0 else "")
    ),
    AFFIX,
    st.sampled_from(sorted(KEYWORD_WORDS)),
    AFFIX,
    st.integers(0, 2),
)
SEPARATOR = st.sampled_from([" ", ", ", ". ", "! ", " 🙂 ", "\n", " - "])


@st.composite
def keyword_free_text(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.one_of(PLAIN_WORD, NEAR_WORD), min_size=1, max_size=6))
    text = words[0]
    for word in words[1:]:
        text += draw(SEPARATOR) + word
    return draw(DECORATION) + text + draw(DECORATION)


@given(keyword_free_text(), st.sampled_from([W, F]))
def test_text_without_a_keyword_word_is_none(text: str, mode: MatchMode) -> None:
    assume(not any(word in KEYWORD_WORDS for word in WORD.findall(normalise(text))))
    assert classify(text, mode=mode).klass is NONE


@given(st.sampled_from(LISTED), st.lists(PLAIN_WORD, min_size=1, max_size=4))
def test_a_longer_message_after_a_keyword(listed: str, words: list[str]) -> None:
    _, klass, _ = EXPECTED_DEFAULTS[listed]
    text = f"{listed} {' '.join(words)}"
    first = classify(text, mode=F)
    if klass is IN:
        assert first.klass is not IN or normalise(text) == first.keyword
    elif klass is ALL or klass is OUT:
        assert first.is_opt_out
    else:
        assert first.klass is HELP or first.is_opt_out
    whole = classify(text, mode=W)
    assert whole.klass is NONE or whole.keyword == normalise(text)


def _settled_fold(text: str) -> str:
    """What normalise folded every text with before its ASCII table: the Unicode passes,
    repeated until they change nothing."""
    folded = text
    for _ in range(4):
        again = keywords_module._fold_chars(folded)
        if again == folded:
            break
        folded = again
    return folded


def test_the_ascii_table_is_the_fold_of_each_character_and_settled() -> None:
    for code in range(128):
        ch = chr(code)
        folded = keywords_module._ASCII_FOLDS[code]
        assert folded == keywords_module._fold_chars(ch)
        assert folded.translate(keywords_module._ASCII_FOLDS) == folded


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_folds_as_the_unicode_passes_fold_it(text: str) -> None:
    assert text.translate(keywords_module._ASCII_FOLDS) == _settled_fold(text)
