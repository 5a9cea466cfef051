"""Opt-out footer: decision table, cost reporting, instruction recognition, properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import footer as footer_module
from policy.footer import (
    DEFAULT_FOOTER,
    RINGCENTRAL_CAP,
    TWILIO_CAP,
    FooterMode,
    FooterSkip,
    LengthCap,
    LengthUnit,
    decide_footer,
    has_opt_out_instructions,
)
from policy.segments import count_segments

OFF, ALWAYS, FIRST = FooterMode.OFF, FooterMode.ALWAYS, FooterMode.FIRST
RC, TW = RINGCENTRAL_CAP, TWILIO_CAP
CHARS = LengthCap(1600, LengthUnit.CHARACTERS)
E = "😀"  # one character, two UTF-16 units

PLAIN = "Your appointment is tomorrow at 9:00."
WITH_STOP = "Your appointment is tomorrow. Reply STOP to opt out"


def test_default_footer_facts() -> None:
    assert len(DEFAULT_FOOTER) == 22
    assert has_opt_out_instructions(DEFAULT_FOOTER)
    assert (RC.limit, RC.unit) == (1000, LengthUnit.UTF16)
    assert (TW.limit, TW.unit) == (1600, LengthUnit.UTF16)


# --- The decision table -------------------------------------------------------------

DECISION_TABLE = [
    # id, text, mode, already_sent, cap, added, skipped
    ("off-plain", PLAIN, OFF, False, RC, False, FooterSkip.MODE_OFF),
    ("off-plain-sent", PLAIN, OFF, True, TW, False, FooterSkip.MODE_OFF),
    ("off-instructions", WITH_STOP, OFF, False, RC, False, FooterSkip.MODE_OFF),
    ("off-no-text", None, OFF, False, RC, False, FooterSkip.MODE_OFF),
    ("always-plain", PLAIN, ALWAYS, False, RC, True, None),
    ("always-plain-sent", PLAIN, ALWAYS, True, RC, True, None),
    ("always-plain-twilio", PLAIN, ALWAYS, True, TW, True, None),
    ("always-instructions", WITH_STOP, ALWAYS, False, RC, False, FooterSkip.HAS_INSTRUCTIONS),
    ("always-instructions-sent", WITH_STOP, ALWAYS, True, TW, False, FooterSkip.HAS_INSTRUCTIONS),
    ("always-none", None, ALWAYS, False, RC, False, FooterSkip.NO_TEXT),
    ("always-empty", "", ALWAYS, False, TW, False, FooterSkip.NO_TEXT),
    ("first-plain-new-pair", PLAIN, FIRST, False, RC, True, None),
    ("first-plain-new-pair-twilio", PLAIN, FIRST, False, TW, True, None),
    ("first-plain-sent", PLAIN, FIRST, True, RC, False, FooterSkip.ALREADY_SENT),
    ("first-instructions-new", WITH_STOP, FIRST, False, RC, False, FooterSkip.HAS_INSTRUCTIONS),
    ("first-instructions-sent", WITH_STOP, FIRST, True, RC, False, FooterSkip.ALREADY_SENT),
    ("first-none", None, FIRST, False, RC, False, FooterSkip.NO_TEXT),
    ("first-empty-sent", "", FIRST, True, RC, False, FooterSkip.NO_TEXT),
    # RingCentral counts UTF-16 units: 978 + 22 = 1000 fits, 979 + 22 does not.
    ("rc-bmp-at-cap", "a" * 978, ALWAYS, False, RC, True, None),
    ("rc-bmp-over-cap", "a" * 979, ALWAYS, False, RC, False, FooterSkip.LENGTH_CAP),
    ("rc-emoji-at-cap", "a" * 976 + E, ALWAYS, False, RC, True, None),
    ("rc-emoji-over-cap", "a" * 977 + E, ALWAYS, False, RC, False, FooterSkip.LENGTH_CAP),
    ("rc-emoji-only-over-cap", E * 490, ALWAYS, False, RC, False, FooterSkip.LENGTH_CAP),
    ("rc-emoji-only-at-cap", E * 489, FIRST, False, RC, True, None),
    # Twilio counts characters: the same emoji texts are far from its cap.
    ("tw-emoji-under-cap", "a" * 977 + E, ALWAYS, False, TW, True, None),
    ("tw-emoji-only-at-cap", E * 789, ALWAYS, False, TW, True, None),
    ("tw-emoji-only-over-cap", E * 790, ALWAYS, False, TW, False, FooterSkip.LENGTH_CAP),
    ("chars-emoji-only-at-cap", E * 1578, ALWAYS, False, CHARS, True, None),
    ("chars-emoji-only-over-cap", E * 1579, ALWAYS, False, CHARS, False, FooterSkip.LENGTH_CAP),
    ("tw-at-cap", "a" * 1578, ALWAYS, False, TW, True, None),
    ("tw-over-cap", "a" * 1579, FIRST, False, TW, False, FooterSkip.LENGTH_CAP),
    ("tw-text-alone-over-cap", "a" * 1700, ALWAYS, False, TW, False, FooterSkip.LENGTH_CAP),
    # Precedence: an already-served pair is not re-checked for the cap.
    ("first-sent-beats-cap", "a" * 1700, FIRST, True, TW, False, FooterSkip.ALREADY_SENT),
    ("instructions-beat-cap", "a" * 990 + " Reply STOP", ALWAYS, False, RC, False,
     FooterSkip.HAS_INSTRUCTIONS),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "mode", "already_sent", "cap", "added", "skipped"),
    [pytest.param(*row[1:], id=row[0]) for row in DECISION_TABLE],
)
def test_decide_footer(
    text: str | None,
    mode: FooterMode,
    already_sent: bool,
    cap: LengthCap,
    added: bool,
    skipped: FooterSkip | None,
) -> None:
    decision = decide_footer(text, mode=mode, already_sent_to_pair=already_sent, cap=cap)
    assert decision.added is added
    assert decision.skipped is skipped
    original = text or ""
    if added:
        assert decision.text == original + DEFAULT_FOOTER
        assert cap.admits(decision.text)
    else:
        assert decision.text == original
        assert decision.after == decision.before
    assert decision.before == count_segments(original)
    assert decision.after == count_segments(decision.text)


# --- What the footer costs ----------------------------------------------------------

COST_TABLE = [
    # id, text, footer, header, segments_added
    ("no-text", None, DEFAULT_FOOTER, "0->0", 0),
    ("short-stays-one", "a" * 100, DEFAULT_FOOTER, "1->1", 0),
    ("138-fills-160", "a" * 138, DEFAULT_FOOTER, "1->1", 0),
    ("139-spills-to-two", "a" * 139, DEFAULT_FOOTER, "1->2", 1),
    ("150-char-gsm", "a" * 150, DEFAULT_FOOTER, "1->2", 1),
    ("two-stay-two", "a" * 280, DEFAULT_FOOTER, "2->2", 0),
    ("two-become-three", "a" * 290, DEFAULT_FOOTER, "2->3", 1),
    ("ucs2-48-fills-70", "ç" * 48, DEFAULT_FOOTER, "1->1", 0),
    ("ucs2-49-spills", "ç" * 49, DEFAULT_FOOTER, "1->2", 1),
    ("ucs2-emoji", "Great news " + E * 20, DEFAULT_FOOTER, "1->2", 1),
    # A footer outside GSM-7 turns the whole message into UCS-2: 100 + 31 units > 70.
    ("footer-makes-ucs2", "a" * 100, "\nResponde BAJA para cancelación", "1->2", 1),
    ("footer-makes-ucs2-three", "a" * 120, "\nResponde BAJA para cancelación", "1->3", 2),
]


@pytest.mark.parametrize(
    ("text", "footer", "header", "segments_added"),
    [pytest.param(*row[1:], id=row[0]) for row in COST_TABLE],
)
def test_cost_is_reported(text: str | None, footer: str, header: str, segments_added: int) -> None:
    decision = decide_footer(text, mode=ALWAYS, footer=footer, already_sent_to_pair=False, cap=TW)
    assert decision.header_value() == header
    assert decision.segments_added == segments_added


def test_150_char_gsm_text_goes_from_one_to_two_segments() -> None:
    decision = decide_footer("x" * 150, mode=ALWAYS, already_sent_to_pair=False, cap=RC)
    assert decision.added
    assert decision.before == count_segments("x" * 150)
    assert (decision.before.segments, decision.after.segments) == (1, 2)
    assert decision.after.units == 172
    assert decision.header_value() == "1->2"
    assert decision.segments_added == 1


def test_skipped_decision_costs_nothing() -> None:
    decision = decide_footer("a" * 150, mode=OFF, already_sent_to_pair=False, cap=RC)
    assert decision.header_value() == "1->1"
    assert decision.segments_added == 0


def test_custom_footer_is_appended_verbatim() -> None:
    footer = " Txt STOP 2 quit"
    decision = decide_footer(
        "Sale today", mode=ALWAYS, footer=footer, already_sent_to_pair=False, cap=TW
    )
    assert decision.text == "Sale today Txt STOP 2 quit"


def test_empty_footer_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="footer"):
        decide_footer("hi", mode=ALWAYS, footer="", already_sent_to_pair=False, cap=RC)


PAIR_SERVED_TABLE = [
    # id, text, mode, already_sent, cap, pair_served
    ("added", PLAIN, FIRST, False, RC, True),
    ("own-instructions", WITH_STOP, FIRST, False, RC, True),
    ("length-cap-retries-next-time", "a" * 1000, FIRST, False, RC, False),
    ("no-text", None, FIRST, False, RC, False),
    ("off", PLAIN, OFF, False, RC, False),
    ("already-sent", PLAIN, FIRST, True, RC, False),
]


@pytest.mark.parametrize(
    ("text", "mode", "already_sent", "cap", "served"),
    [pytest.param(*row[1:], id=row[0]) for row in PAIR_SERVED_TABLE],
)
def test_pair_served(
    text: str | None, mode: FooterMode, already_sent: bool, cap: LengthCap, served: bool
) -> None:
    decision = decide_footer(text, mode=mode, already_sent_to_pair=already_sent, cap=cap)
    assert decision.pair_served is served


@pytest.mark.parametrize(
    ("cap", "text", "measured"),
    [
        (RC, "abc", 3),
        (RC, E, 2),
        (RC, "ç中" + E, 4),
        (TW, E, 2),
        (CHARS, E, 1),
        (CHARS, "ç中" + E, 3),
    ],
)
def test_cap_measure(cap: LengthCap, text: str, measured: int) -> None:
    assert cap.measure(text) == measured


# --- Recognising opt-out instructions ----------------------------------------------

INSTRUCTIONS = [
    "Reply STOP to opt out",
    "\nReply STOP to opt out",
    "Text STOP to unsubscribe",
    "reply stop to end",
    "Txt STOP 2 quit",
    "STOP to cancel",
    "Msg&data rates may apply. Reply HELP for help, STOP to cancel.",
    "to opt out reply STOP",
    "To opt out, reply stop",
    "to unsubscribe text stop",
    "Responde STOP para cancelar",
    "Responde BAJA",
    "Envía BAJA al 12345",
    "Envia BAJA",
    "BAJA para salir",
    "Répondez STOP pour vous désabonner",
    "Reply with the word STOP",
    "Reply With STOP to stop receiving messages",
    "Text back STOP",
    "Reply: STOP",
    "reply 'stop'",
    'Reply "cancel" to stop',
    "Reply “STOP” to opt out",
    "Reply Stop to opt out",
    "Reply STOP, END or QUIT",
    "Reply END to stop",
    "Reply OPT-OUT",
    "Reply OPT OUT",
    "Text OPTOUT",
    "Reply STOPALL",
    "Send UNSUBSCRIBE",
    "SMS STOP to 12345",
    "text stop to 55555",
    "Questions? Reply stop.",
    "Opt-out: reply STOP",
    "Unsubscribe: text STOP",
    "Sale ends Friday! reply STOP to unsub",
    "REPLY STOP TO OPT OUT",
]

NOT_INSTRUCTIONS = [
    "",
    "don't stop believing",
    "I'll stop by",
    "We have got to STOP this bill",
    "Stop. Thank you",
    "please stop sending text reminders",
    "make the spam text stop",
    "Did the text stop?",
    "Hi! Text stop by the store today",
    "Reply by end of day",
    "send end-of-month totals",
    "Send end of year report",
    "We will text you to stop by",
    "Text me when you stop",
    "Reply HELP for help",
    "reply stopped working",
    "Send STOP-loss alerts",
    "the bus will stop to end its route",
    "Reply baja",
    "la temperatura baja mañana",
    "STOP by our store",
    "Unstoppable deals",
    "Reply S to stop",
    "Unsubscribe at example.com/u",
    "You can opt out anytime in the app",
    "Reply YES to confirm",
    "Bus stop moved to Main St",
]


@pytest.mark.parametrize("text", INSTRUCTIONS)
def test_recognises_instructions(text: str) -> None:
    assert has_opt_out_instructions(text)


@pytest.mark.parametrize("text", NOT_INSTRUCTIONS)
def test_plain_mentions_are_not_instructions(text: str) -> None:
    assert not has_opt_out_instructions(text)


# --- Properties ---------------------------------------------------------------------

texts = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.lists(st.sampled_from(["a", " ", "€", "ç", E, "STOP", "Reply ", "stop"]), max_size=300).map(
        "".join
    ),
    st.builds(lambda n: "a" * n, st.integers(min_value=0, max_value=1700)),
)
modes = st.sampled_from(list(FooterMode))
caps = st.sampled_from(
    [RC, TW, LengthCap(200, LengthUnit.UTF16), LengthCap(50, LengthUnit.CHARACTERS)]
)


@given(texts, modes, st.booleans(), caps)
@settings(max_examples=300)
def test_decision_invariants(
    text: str | None, mode: FooterMode, already_sent: bool, cap: LengthCap
) -> None:
    decision = decide_footer(text, mode=mode, already_sent_to_pair=already_sent, cap=cap)
    original = text or ""
    assert decision.added is (decision.skipped is None)
    assert decision.text == (original + DEFAULT_FOOTER if decision.added else original)
    assert decision.before == count_segments(original)
    assert decision.after == count_segments(decision.text)
    assert decision.segments_added >= 0
    if decision.added:
        assert cap.admits(decision.text)
        assert mode is not FooterMode.OFF
        assert not (mode is FooterMode.FIRST and already_sent)


@given(texts, modes, caps)
def test_footer_is_never_added_twice(text: str | None, mode: FooterMode, cap: LengthCap) -> None:
    first = decide_footer(text, mode=mode, already_sent_to_pair=False, cap=cap)
    again = decide_footer(first.text, mode=FooterMode.ALWAYS, already_sent_to_pair=False, cap=cap)
    if first.added:
        assert not again.added
        assert again.skipped is FooterSkip.HAS_INSTRUCTIONS


@given(st.text(max_size=300))
def test_default_footer_is_recognised_after_any_text(text: str) -> None:
    assert has_opt_out_instructions(text + DEFAULT_FOOTER)


@given(texts, st.booleans(), caps)
def test_off_never_adds(text: str | None, already_sent: bool, cap: LengthCap) -> None:
    decision = decide_footer(text, mode=OFF, already_sent_to_pair=already_sent, cap=cap)
    assert decision.skipped is FooterSkip.MODE_OFF


_FRAGMENTS = st.sampled_from(
    [
        "reply", "Reply", "REPLY", "text", "TXT", "send", "sms", "responde", "envía", "répondez",
        " ", "  ", "\n", ".", "?", ",", ":", "(", ")", "'", '"', "“", "”", "«", "»", "-",
        "STOP", "stop", "Stop", "STOPALL", "stop all", "unsubscribe", "UNSUB", "opt-out",
        "OPT OUT", "optout", "end", "END", "QUIT", "quit", "cancel", "CANCEL", "REVOKE",
        "REMOVE", "BAJA", "baja", "ALTO", "PARAR", "DETENER", "SALIR", "salir", "ARRET",
        "ARRÊT", "ARRETE", "arrête", "to", "2", "para", "pour", "al", "be removed",
        "with the word", "back", "12345", "+1555", "ſtop", "STOP\u212a", "K", "é", "weekend",
    ]
)  # fmt: skip


@given(st.lists(_FRAGMENTS, max_size=10).map("".join) | st.text(max_size=40))
def test_the_keyword_shortcut_never_changes_the_answer(text: str) -> None:
    full = any(form.search(text) for form in footer_module._INSTRUCTION_FORMS)
    assert has_opt_out_instructions(text) == full


def test_every_keyword_holds_one_of_the_shortcut_stems() -> None:
    for alternatives in (footer_module._PLAIN_KW, footer_module._CAPS_KW):
        for keyword in alternatives.split("|"):
            letters = re.match(r"[A-Za-z]+", keyword)
            assert letters is not None, keyword
            lowered = letters.group().lower()
            assert any(stem in lowered for stem in footer_module._KEYWORD_STEMS), keyword
