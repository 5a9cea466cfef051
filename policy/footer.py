"""Opt-out footer: whether to append "Reply STOP to opt out" and what it costs.

Appending a footer can push a message into another segment, which costs money, so
every decision carries the segment count before and after (exported as the response
header ``X-Stopgate-Segments: before->after``). The footer is never added when the
text already tells the recipient how to opt out, nor when it would push the text past
the carrier's length cap (the send would be refused, DESIGN §5).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .segments import SegmentCount, count_segments, utf16_units

__all__ = [
    "DEFAULT_FOOTER",
    "RINGCENTRAL_CAP",
    "TWILIO_CAP",
    "FooterDecision",
    "FooterMode",
    "FooterSkip",
    "LengthCap",
    "LengthUnit",
    "decide_footer",
    "has_opt_out_instructions",
]

DEFAULT_FOOTER = "\nReply STOP to opt out"


class FooterMode(enum.StrEnum):
    OFF = "off"
    ALWAYS = "always"
    FIRST = "first"


class LengthUnit(enum.StrEnum):
    UTF16 = "utf16"
    CHARACTERS = "characters"


@dataclass(frozen=True, slots=True)
class LengthCap:
    """Longest text a carrier accepts in one send.

    ``UTF16`` counts UTF-16 code units (an emoji counts 2). ``CHARACTERS`` counts
    Unicode code points (an emoji counts 1). Twilio documents its cap as 1600
    characters but its error 21617 says emoji and other non-GSM characters "will be
    counted as multiple characters"; if that bites, switch ``TWILIO_CAP`` to ``UTF16``.
    """

    limit: int
    unit: LengthUnit

    def measure(self, text: str) -> int:
        if self.unit is LengthUnit.UTF16:
            return utf16_units(text)
        return len(text)

    def admits(self, text: str) -> bool:
        return self.measure(text) <= self.limit


RINGCENTRAL_CAP = LengthCap(1000, LengthUnit.UTF16)
# Twilio documents 1600 characters but counts a non-GSM character as more than one, so the
# cap is measured in UTF-16 units: the reading that never lets a footer push a send over.
TWILIO_CAP = LengthCap(1600, LengthUnit.UTF16)


class FooterSkip(enum.StrEnum):
    MODE_OFF = "off"
    ALREADY_SENT = "already-sent"
    HAS_INSTRUCTIONS = "has-opt-out-instructions"
    LENGTH_CAP = "length-cap"
    NO_TEXT = "no-text"


@dataclass(frozen=True, slots=True)
class FooterDecision:
    """Outcome of :func:`decide_footer`.

    ``text`` is what to send: the original, or the original with the footer appended
    (``""`` when there was no text). Exactly one of ``added`` and ``skipped`` is set.
    ``before`` counts the original text, ``after`` counts ``text``.
    """

    text: str
    added: bool
    skipped: FooterSkip | None
    before: SegmentCount
    after: SegmentCount

    @property
    def segments_added(self) -> int:
        """Extra segments the footer costs; 0 when it was not added."""
        return self.after.segments - self.before.segments

    @property
    def pair_served(self) -> bool:
        """This send tells the recipient how to opt out, by our footer or its own words.

        A ``FIRST``-mode caller sets its per-pair "already sent" flag when this is
        True. It is False when the footer was skipped for the length cap, so the next
        message to the pair tries again.
        """
        return self.added or self.skipped is FooterSkip.HAS_INSTRUCTIONS

    def header_value(self) -> str:
        """Value for ``X-Stopgate-Segments``: ``"before->after"``, e.g. ``"1->2"``."""
        return f"{self.before.segments}->{self.after.segments}"


# --- Opt-out instruction recognition ---------------------------------------------
#
# A text "carries opt-out instructions" when one of these forms occurs in it:
#
#   1. instruction verb + keyword in CAPITALS or quoted   "Text STOP to 12345",
#                                                          "Txt STOP 2 quit",
#                                                          "Responde BAJA", "reply 'stop'"
#   2. instruction verb + keyword in any case + purpose   "reply stop to end",
#      (or a number to send it to)                         "text stop to 55555"
#   3. instruction verb opening a clause + keyword in      "Questions? Reply stop."
#      any case closing it
#   4. opt-out purpose + instruction verb + keyword       "to opt out reply stop"
#   5. keyword in CAPITALS or quoted + purpose            "STOP to cancel",
#                                                          "BAJA para salir"
#
# Why the case rules: a false "yes" suppresses the footer (a compliance gap) while a
# false "no" only costs a redundant footer, so everyday words are not trusted on
# their own. END, QUIT, CANCEL, BAJA ("low"), SALIR ("to leave") … count only in
# capitals or quotes ("send end-of-month totals" is not an instruction), and even
# STOP in lower case needs context ("make the spam text stop" is not one either).

_VERBS = (
    r"reply|respond|text|txt|send|sms"
    r"|responde|responda|contesta|env[ií]a|manda|escribe"
    r"|r[ée]pondez|envoyez"
)
# Words that may sit between the verb and the keyword: "reply with the word STOP",
# "text back STOP", "responde con la palabra BAJA", "répondez par STOP".
_FILLER = r"(?i:\s+(?:with|back|us|the|word|keyword|con|la|palabra|clave|par|le|mot))*"
_SEP = r"(?:\s*:\s*|\s+)"

# Unambiguous as a reply even in lower case.
_PLAIN_KW = r"stop\s?all|stop|unsubscribe|unsub|opt[\s-]?out"
# Everyday words too; trusted only in capitals or quotes.
_CAPS_KW = (
    r"STOP\s?ALL|STOP|UNSUBSCRIBE|UNSUB|OPT[\s-]?OUT|END|QUIT|CANCEL|REVOKE|REMOVE"
    r"|CANCELAR|BAJA|ALTO|PARAR|DETENER|SALIR|ARR[EÊ]T|ARR[EÊ]TE"
)
_ANY_KW = _CAPS_KW.lower()

_OPEN_Q = r"[\"'“‘«]"
_CLOSE_Q = r"[\"'”’»]"
# A keyword that ends mid-token ("STOP-loss", "stopped") is not a keyword.
_KW_END = r"(?![\w-])"

_STRICT_KW = (
    rf"(?:{_OPEN_Q}?(?:{_CAPS_KW}){_KW_END}{_CLOSE_Q}?"
    rf"|{_OPEN_Q}(?i:{_ANY_KW}){_CLOSE_Q})"
)
_LOOSE_KW = rf"(?:{_OPEN_Q}?(?i:{_PLAIN_KW}){_KW_END}{_CLOSE_Q}?)"

_PURPOSE = (
    r"(?i:(?:to|2|para|pour)\s+"
    r"(?:opt[\s-]?out|unsubscribe|unsub|cancel|end|quit|stop|be\s+removed"
    r"|cancelar|salir|darte\s+de\s+baja|dar\s+de\s+baja|dejar\s+de\s+recibir|no\s+recibir"
    r"|vous\s+d[ée]sabonner|vous\s+d[ée]sinscrire|d[ée]sabonner)\b)"
)
_DESTINATION = r"(?i:(?:to|al|au)\s+\+?\d)"
_INTENT = (
    r"(?i:\b(?:to|para|pour)\s+"
    r"(?:opt[\s-]?out|unsubscribe|unsub|cancel|be\s+removed|stop\s+receiving"
    r"|cancelar|darte\s+de\s+baja|dar\s+de\s+baja|dejar\s+de\s+recibir"
    r"|vous\s+d[ée]sabonner))"
)
_VERB = rf"(?i:\b(?:{_VERBS})\b){_FILLER}{_SEP}"
_CLAUSE_START = r"(?:^|[.!?;:,()\n]\s*)"
_CLAUSE_END = r"\s*(?:[.!?;,)\n]|$)"

_INSTRUCTION_FORMS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        rf"{_VERB}{_STRICT_KW}",  # 1
        rf"{_VERB}{_LOOSE_KW}\s+(?:{_PURPOSE}|{_DESTINATION})",  # 2
        rf"{_CLAUSE_START}{_VERB}{_LOOSE_KW}{_CLAUSE_END}",  # 3
        rf"{_INTENT}[\s,:]*{_VERB}{_LOOSE_KW}",  # 4
        rf"(?<![\w-]){_STRICT_KW}\s+{_PURPOSE}",  # 5
    )
)


def has_opt_out_instructions(text: str) -> bool:
    """True when ``text`` already tells the recipient how to opt out.

    Recognises an instruction verb (reply, text, txt, send, sms, responde, envía, …)
    near an opt-out keyword (STOP, UNSUBSCRIBE, END, BAJA, …), or a keyword followed
    by its purpose ("STOP to cancel"). A plain mention ("don't stop believing",
    "We have got to STOP this bill") is not an instruction; neither is a link.
    The forms and the reasons for the case rules are listed above this function.
    """
    if text.isascii():
        # Every form holds a keyword; ASCII text (the usual message) holding none of their
        # stems, in any case, cannot match one, and one pass says so. (Not for other text:
        # there IGNORECASE also matches letters lower() does not give, like "ſ" for "s".)
        lowered = text.lower()
        if not any(stem in lowered for stem in _KEYWORD_STEMS):
            return False
    return any(form.search(text) for form in _INSTRUCTION_FORMS)


_KEYWORD_STEMS = (
    "stop", "unsub", "opt", "end", "quit", "cancel", "revoke", "remove",
    "baja", "alto", "parar", "detener", "salir", "arr",
)  # fmt: skip
"""A stem of each keyword of ``_PLAIN_KW`` and ``_CAPS_KW``, lower case (a test holds it)."""


def decide_footer(
    text: str | None,
    *,
    mode: FooterMode,
    footer: str = DEFAULT_FOOTER,
    already_sent_to_pair: bool,
    cap: LengthCap,
) -> FooterDecision:
    """Decide whether to append ``footer`` to ``text`` and count the cost.

    Checks, first match wins: ``mode`` is OFF → ``MODE_OFF``; no text (``None`` or
    ``""``, e.g. an MMS without a body) → ``NO_TEXT``; ``mode`` is FIRST and
    ``already_sent_to_pair`` → ``ALREADY_SENT``; the text carries its own opt-out
    instructions → ``HAS_INSTRUCTIONS``; text + footer would exceed ``cap`` →
    ``LENGTH_CAP`` (text unchanged). Otherwise the footer is appended verbatim.

    ``already_sent_to_pair`` is the caller's per-(sender, recipient) memory; it sets
    it when :attr:`FooterDecision.pair_served` and clears it when the pair opts in
    again. Raises ``ValueError`` for an empty ``footer`` (a configuration error).
    """
    if not footer:
        raise ValueError("footer must not be empty")
    original = text or ""
    before = count_segments(original)

    def skip(reason: FooterSkip) -> FooterDecision:
        return FooterDecision(
            text=original, added=False, skipped=reason, before=before, after=before
        )

    if mode is FooterMode.OFF:
        return skip(FooterSkip.MODE_OFF)
    if not original:
        return skip(FooterSkip.NO_TEXT)
    if mode is FooterMode.FIRST and already_sent_to_pair:
        return skip(FooterSkip.ALREADY_SENT)
    if has_opt_out_instructions(original):
        return skip(FooterSkip.HAS_INSTRUCTIONS)
    candidate = original + footer
    if not cap.admits(candidate):
        return skip(FooterSkip.LENGTH_CAP)
    return FooterDecision(
        text=candidate,
        added=True,
        skipped=None,
        before=before,
        after=count_segments(candidate),
    )
