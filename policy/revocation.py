"""Plain-language revocation: does a message that is not a keyword still say "stop texting me"?

Since April 2025 a revocation "by any reasonable means" counts (47 CFR 64.1200(a)(10)), while
carriers match single keywords only. :func:`classify_revocation` reads the text of an inbound
message that matched no keyword and answers one of three outcomes (:class:`Outcome`):

- ``revoke``: the person asks to stop ("please stop texting me", "remove me from your list",
  "no more texts", "Stop. Thank you", "para de mandarme mensajes"). The gateway records the
  pair's OptOut exactly as for STOP.
- ``unclear``: it may be a revocation ("how do I unsubscribe?", "stop this", "not interested",
  "who is this?"). The FCC allows one clarifying text; the gateway sends it and flags the
  message for compliance review.
- ``none``: nothing to act on ("I'll stop by later", "can't stop laughing", "cancel my
  appointment", "when does the sale end?").

Pure and explainable: no model, no I/O. Every answer carries the rule that decided it, the
phrase it matched and the guards that fired (:attr:`Revocation.explanation`), which the
compliance console shows. Recall comes first: a revocation must not be missed, so doubtful
requests are ``unclear`` rather than ``none``; false ``revoke`` answers stay rare because guards
remove the known lookalikes before any rule runs.

How a message is read:

1. It is split into sentences (clauses) after ``. ! ? ; : ,`` and at line breaks; each is
   normalised with :func:`policy.keywords.normalise` (case, accents, full-width forms,
   invisible characters, ``opt out`` → ``optout``), then apostrophes are dropped (``don't``
   → ``dont``, ``m'envoyer`` → ``menvoyer``) and every other non-letter becomes a space, so
   emoji, punctuation and hyphens never matter.
2. Guards (:data:`GUARDS`) run first and blank out what they match: ``stop by``, ``can't stop
   laughing``, ``don't stop``, ``cancel my appointment``, ``when does … end``, ``bus stop``…
   A word a guard took can no longer trigger a rule.
3. Rules (:data:`RULES`) run on what is left, in order; the first one that matches decides the
   sentence. A sentence made only of opt-out keywords (from the keyword lists in force) and
   politeness words (``Stop. Thank you``, ``stop please``, ``alto por favor``) is ``revoke``;
   a sentence that starts with an opt-out keyword followed by anything else is ``unclear``.
   Stop-words that are no listed keyword count too: typos (``stopp``, ``stahp``) and verb forms
   (``arrêtez``, ``paren``).
4. Downgrades turn a ``revoke`` into ``unclear``: a question (``how do I unsubscribe?``) unless
   it is a request (``can you stop texting me?``), another channel (``unsubscribe me from the
   newsletter``), someone else (``my ex keeps texting me, make him stop``), a time limit
   (``don't text me before 9am``), or laughter anywhere in the message (``stop 😂``).
5. The message is the strongest of its sentences: revoke > unclear > none.

"Wrong number" is ``revoke``: the person writing never gave the sender consent (the number was
reassigned or mistyped), so a further text - even a clarifying one - has no consent behind it;
recording the OptOut at once is both what the person wants and the sender's safe course.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from policy.keywords import DEFAULT_LISTS, KeywordClass, KeywordLists, normalise

__all__ = [
    "GUARDS",
    "MAX_TEXT",
    "RULES",
    "GuardHit",
    "Outcome",
    "Revocation",
    "Rule",
    "classify_revocation",
    "sentences",
]


class Outcome(enum.StrEnum):
    REVOKE = "revoke"
    UNCLEAR = "unclear"
    NONE = "none"


MAX_TEXT = 1600
"""Characters read: the longest text an SMS carrier delivers (Twilio 1600; RingCentral 1000).
Bounds the work a webhook can cause (about 50 ms of CPU for the worst 1600 characters)."""

_STRENGTH = {Outcome.NONE: 0, Outcome.UNCLEAR: 1, Outcome.REVOKE: 2}


@dataclass(frozen=True, slots=True)
class Rule:
    """A named pattern over a cleaned sentence (words of letters and digits, single spaces)."""

    name: str
    """``<language>.<what it recognises>``, e.g. ``en.stop-contact``."""
    outcome: Outcome
    pattern: re.Pattern[str]

    @property
    def language(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class GuardHit:
    """A guard that fired: its name and the words it took."""

    name: str
    phrase: str


@dataclass(frozen=True, slots=True)
class Revocation:
    """The answer for one message. ``rule``/``phrase`` name what decided it (None for
    ``none`` when nothing matched); ``language`` is the rule's (or the keyword's) language, for
    the reply; ``guards`` lists every guard and downgrade that fired."""

    outcome: Outcome
    rule: str | None
    phrase: str | None
    language: str | None
    guards: tuple[GuardHit, ...] = ()

    @property
    def explanation(self) -> str:
        """One line a compliance officer can read, e.g. ``revoke: rule en.stop-contact
        matched "stop texting me"`` or ``none: no rule matched; guard en.stop-by took
        "stop by"``."""
        if self.rule is not None:
            line = f'{self.outcome.value}: rule {self.rule} matched "{self.phrase}"'
        else:
            line = f"{self.outcome.value}: no rule matched"
        if self.guards:
            taken = ", ".join(f'{g.name} ("{g.phrase}")' for g in self.guards)
            line += ("; guards " if len(self.guards) > 1 else "; guard ") + taken
        return line


# --- Vocabulary -----------------------------------------------------------------------
# Word classes the patterns are built from (cleaned text: no accents, no apostrophes).

_STOP = r"(?:stop+|stp|sotp|stahp|st0p|stopall|cease|quit|halt|end|cancel)"
_EN_CONTACT = (
    r"(?:te?xt\w*|txt\w*|tx|sms\w*|messag\w*|mesag\w*|messeg\w*|msg\w*|send\w*|contact\w*|"
    r"call\w*|ring\w*|spam\w*|bother\w*|bug+ing|harass\w*|pester\w*|email\w*|e mail\w*|"
    r"hitting me up|blowing up)"
)
_EN_MESSAGES = (
    r"(?:te?xts?|txts?|texting|msgs?|messages?|sms|spam|notifications?|alerts?|reminders?|"
    r"promos?|promotions?|offers?|ads|marketing|updates|deals|these|this crap|this shit|"
    r"calls|emails?|communications?|contact)"
)
_EN_CONTACT_STEMS = (
    r"te?x|txt|messag|mesag|msg|send|contact|call|spam|bother|bug|harass|pester|email|hitting"
    r"|blowing|ring|get|receiv|reciev"
)
_UNSUB = r"(?:un ?s[ubs]{0,3}c?r?i?be?\w*|optout|opt (?:\w+ ){1,2}out|opting out|opted out)"
_OTHER_CHANNEL = r"\b(?:e ?mails?|newsletters?|mailing|mail|correos?|courriels?|emails)\b"
_FILLER = frozenset(
    [
        "please",
        "pls",
        "plz",
        "plez",
        "plox",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "tks",
        "tyvm",
        "now",
        "it",
        "already",
        "asap",
        "immediately",
        "right",
        "away",
        "ok",
        "okay",
        "k",
        "kk",
        "lol",
        "again",
        "sir",
        "maam",
        "man",
        "dude",
        "bro",
        "guys",
        "yall",
        "omg",
        "jeez",
        "geez",
        "god",
        "damn",
        "dammit",
        "fucking",
        "fuckin",
        "freaking",
        "fn",
        "effing",
        "seriously",
        "just",
        "for",
        "real",
        "really",
        "por",
        "favor",
        "porfa",
        "porfavor",
        "favor",
        "gracias",
        "muchas",
        "ya",
        "merci",
        "svp",
        "sil",
        "vous",
        "plait",
        "te",
        "beaucoup",
        "obrigado",
        "obrigada",
        "pfv",
        "pf",
        "ja",
        "agora",
        "de",
        "una",
        "vez",
    ]
)
"""Politeness and emphasis: a sentence of opt-out keywords and these is a revocation."""
_STOP_WORDS = {
    **dict.fromkeys(("stopp", "stoppp", "stp", "sotp", "stahp", "st0p", "stooop", "stopit"), "en"),
    **dict.fromkeys(("paren", "detente", "detengan", "detenganse"), "es"),
    **dict.fromkeys(("arretez", "arreter", "arretes"), "fr"),
    **dict.fromkeys(("parem", "pare"), "pt"),
}
"""Typos and verb forms a sentence of keywords may use as well as the listed keywords."""


def _rule(name: str, outcome: Outcome, pattern: str) -> Rule:
    return Rule(name, outcome, re.compile(pattern))


_R, _U = Outcome.REVOKE, Outcome.UNCLEAR

GUARDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        # English: the known lookalikes.
        (
            "en.stop-somewhere",
            r"\bstop (?:by|in|over|off|into|round|around|on (?:the|my|your) way|"
            r"at (?!once\b)|for (?!good\b)|to (?!\w*(?:text|messag|send|contact|call)))",
        ),
        ("en.place-stop", r"\b(?:bus|next|last|first|pit|truck|rest|one|train|final) stop\b"),
        ("en.full-stop", r"\b(?:full|non|nonstop|no) stop\b(?! (?:te?xt|messag|send))"),
        (
            "en.cannot-stop",
            r"\b(?:cant|cannot|can not|couldnt|could not|wont be able to|never) "
            r"stop (?!(?:te?xt|txt|messag|msg|send|contact|call|spam))",
        ),
        (
            "en.do-not-stop",
            r"\b(?:dont|do not|please dont|pls dont|never|not) (?:ever )?"
            r"(?:stop|quit|end|cancel|unsubscribe|unsub|remove|optout|opt me out)\b",
        ),
        (
            "en.not-want-to-stop",
            r"\b(?:dont|do not|never|not) (?:want|wanna|wish|mean|need) (?:to )?(?:be )?"
            r"(?:stop\w*|unsubscrib\w*|remov\w*|cancel\w*|optout|opt out)",
        ),
        (
            "en.stop-other-activity",
            rf"\bstop (?!(?:{_EN_CONTACT_STEMS}|it\b|this\b|now\b|please\b|pls\b|"
            r"(?:every|any|no|some)thing\b))\w+ing\b",
        ),
        (
            "en.cancel-business",
            r"\b(?:cancel\w*|end|quit|remove) (?:my |the |our |this |that |your |a |an |"
            r"tomorrows |todays )?(?:\w+ )?(?:\d+ ?(?:am|pm)?\b|noon|monday|tuesday|wednesday|"
            r"thursday|friday|saturday|sunday|appointment|appt|order|reservation|booking|visit|"
            r"meeting|delivery|ride|trip|flight|class|session|plan|card|payment|pickup|"
            r"table|consult\w*|membership|request|transfer|check|cleaning|procedure|"
            r"surgery|lesson|tour|shift|item|items|lease|service|policy|account|job|"
            r"date|party|event|tickets?|time|slot|call|interview|install\w*|paint|oil)\b",
        ),
        ("en.end-of", r"\bend (?:of|up|date|time|result|user|game|table)\b|\bthe end\b"),
        (
            "en.when-end",
            r"\b(?:when|what time|what day|how long|till|until|before|after) .*\bend",
        ),
        ("en.ends", r"\b(?:sale|offer|promo|deal|it|this|that|event|lease|shift) ends?\b"),
        (
            "en.remove-thing",
            r"\bremove (?:the |my |a |that |this )?(?:\w+ )?(?:item|fee|charge"
            r"|stain|tooth|teeth|mole|tattoo|hair|cast|stitches|splinter|wax|card)s?\b|"
            r"\bremove (?:\w+ ){1,3}from (?:my|the|your|our) (?:order|bill|cart|account|card|"
            r"receipt|invoice|plate|car|room)\b",
        ),
        (
            "en.other-list",
            r"\b(?:remove|take|drop|delete|get|put) (?:me|us|my name) (?:off|from|on) (?:the |your "
            r"|this |my )?(?:wait ?list|waiting list|schedule|class|roster|reservation|calendar|"
            r"appointment|order|team|guest list|list for \w+)\b",
        ),
        ("en.quit-habit", r"\bquit (?:smoking|drinking|vaping|my job|job|school|the team)\b"),
        ("en.stop-sign", r"\bstop (?:sign|light|watch|gap|loss)s?\b"),
        ("en.tell-other", r"\b(?:tell|ask|make) (?:him|her|my \w+) (?:to )?stop\b"),
        (
            "en.someone-else",
            r"\b(?:he|she|they|my \w+)(?: \w+)? (?:wont|will not|doesnt|does not|wouldnt|never|"
            r"cant|cannot) stop\b",
        ),
        # Spanish.
        ("es.no-pares", r"\bno (?:pares|paren|pare|te detengas|cancel\w*)\b"),
        (
            "es.cancel-business",
            r"\bcancel\w* (?:mi |la |el |mis |las |los |nuestra |su )?(?:cita|pedido|orden|"
            r"reserva\w*|reservacion|visita|compra|vuelo|clase|tarjeta|cuenta|servicio)\b",
        ),
        ("es.salir-a", r"\bsalir (?:a|de casa|con|temprano|tarde)\b"),
        ("es.alto-adj", r"\b(?:muy|mas|el|la|lo|un|una|en lo) alto\b"),
        # French.
        ("fr.narrete-pas", r"\bn ?arret\w* pas\b"),
        ("fr.arret-de-bus", r"\barret (?:de bus|d autobus|dautobus|de tram)\b"),
        ("fr.arreter-de-rire", r"\barret\w* (?:de |d )?(?:rire|pleurer|plaisanter|rigoler)\b"),
        # Portuguese.
        ("pt.nao-pare", r"\bnao (?:pare|parem|pares|cancele)\b"),
        (
            "pt.cancel-business",
            r"\bcancel\w* (?:minha |meu |a |o |os |as )?(?:consulta|pedido|reserva|compra|"
            r"voo|aula|cartao|conta|servico)\b",
        ),
    )
)
"""Guards: what they match is blanked out before the rules run."""

RULES: tuple[Rule, ...] = (
    # --- English, revoke.
    _rule("en.wrong-number", _R, r"\bwrong (?:number|num|nbr|no|person|phone|#)\b"),
    _rule("en.wrong-number", _R, r"\b(?:not|no longer) (?:my|this persons) (?:number|phone)\b"),
    _rule("en.stop-contact", _R, rf"\b{_STOP} (?:\w+ ){{0,2}}?{_EN_CONTACT}"),
    _rule("en.stop-messages", _R, rf"\b{_STOP}\b(?: \w+){{0,4}} {_EN_MESSAGES}\b"),
    _rule(
        "en.do-not-contact",
        _R,
        r"\b(?:dont|do not|never|pls dont|please dont|dnt) (?:ever )?"
        r"(?:te?xt|txt|message|msg|contact|sms|spam|call|email|bother|send me)\b",
    ),
    _rule(
        "en.do-not-contact",
        _R,
        r"\b(?:dont|do not|never) (?:\w+ )?send (?:me )?(?:any )?"
        rf"(?:more )?(?:\w+ )?{_EN_MESSAGES}",
    ),
    _rule(
        "en.remove-me",
        _R,
        r"\bget me (?:off|out)\b|\b(?:remove|rmv|take|delete|drop|erase|scratch|cross|"
        r"unenroll|unregister|deregister|unlist) (?:me|(?:my|this|our) (?:\w+ )?(?:number|phone"
        r"|cell|#|name|info))\b(?! (?:to|in|into|on to|onto|up|a|some|there|back)\b)",
    ),
    _rule(
        "en.remove-me",
        _R,
        r"\b(?:remove|take|delete|get|drop|erase|unsubscribe|put) (?:\w+ )"
        r"{0,3}(?:off|out of|from) (?:your|the|this|ur|yalls|their) (?:\w+ )?(?:list|lists|"
        r"database|system|contacts)\b",
    ),
    _rule(
        "en.remove-me",
        _R,
        r"\b(?:want|wanna|get|take|put) (?:me |us )?(?:off|out of) (?:this|"
        r"your|the|ur|that) (?:\w+ )?list\b|\b(?:be|get|been|being) (?:removed|taken off|"
        r"deleted|unsubscribed|opted out|unenrolled)\b",
    ),
    _rule(
        "en.revoke-consent",
        _R,
        r"\b(?:revoke|revoking|withdraw|withdrawing|cancel|pull) "
        r"(?:my |all |any )?(?:consent|permission|authorization|opt ?in)\b",
    ),
    _rule("en.no-more", _R, rf"\bno (?:more|further) (?:\w+ )?{_EN_MESSAGES}"),
    _rule(
        "en.no-more",
        _R,
        rf"\benough (?:with |of )?(?:the |these |your |all the )?"
        rf"{_EN_MESSAGES}",
    ),
    _rule(
        "en.no-more",
        _R,
        r"^(?:no more|enough|enough already|thats enough|ok enough|"
        r"i said enough)$",
    ),
    _rule("en.unsubscribe", _R, rf"\b{_UNSUB}"),
    _rule(
        "en.leave-alone",
        _R,
        r"\b(?:leave (?:me|us) alone|go away|fuck off|f off|piss off|"
        r"buzz off|get lost|back off|lose my number|forget my number|stop it already)\b",
    ),
    _rule(
        "en.do-not-want",
        _R,
        r"\b(?:dont|do not|does not|doesnt|no longer|never) (?:want|wish|need|like)"
        rf" (?:to (?:get|receive|recieve|be sent) )?(?:any )?(?:more )?(?:of )?(?:\w+ )?"
        rf"{_EN_MESSAGES}",
    ),
    _rule(
        "en.do-not-want",
        _R,
        r"\b(?:dont|do not|no longer) (?:want|wish|like) (?:to be |"
        r"being )(?:contacted|texted|messaged|called|on)",
    ),
    _rule(
        "en.request-stop",
        _R,
        r"\b(?:can|could|would|will|wont|why wont|why dont) "
        r"(?:you|u|ya|yall|you guys) (?:please |pls |plz |just |kindly )?(?:stop|quit|cease)"
        r"(?= *$| (?:it|now|please|pls|already|this|these|that|all|the (?:te?xts|messages))\b)",
    ),
    _rule(
        "en.request-stop",
        _R,
        r"\b(?:want|need|like|ask\w*|beg\w*|told|tell\w*|said"
        r") (?:you|u|ya|yall|you guys)? ?(?:to )?(?:please )?(?:stop|quit|cease)\b",
    ),
    _rule(
        "en.request-stop",
        _R,
        r"\b(?:make it|just|plz|please|pls|now) stop\b|"
        r"\bstop means stop",
    ),
    _rule(
        "en.messages-stop",
        _R,
        rf"\b(?:these|the|your|this|those|all|all these|all the|all your) (?:\w+ )?{_EN_MESSAGES} "
        r"(?:need to |needs to |have to |has to |must |to |should |gotta |better )?(?:stop|end|"
        r"cease)\b|\bmake (?:them|these|this|the \w+) stop\b",
    ),
    _rule(
        "en.said-stop",
        _R,
        r"\b(?:say|said|saying|says|type|typed|replied|texted|wrote|sent) (?:you )?(?:stop|"
        r"unsubscribe|remove|optout)\b",
    ),
    _rule(
        "en.done-with",
        _R,
        r"\b(?:done|finished|sick|tired|fed up) (?:with|of) (?:getting |receiving )?(?:these |"
        rf"your |the |all these |all the |all your )?(?:\w+ )?{_EN_MESSAGES}",
    ),
    _rule(
        "en.spam",
        _R,
        r"\b(?:this is|thats|youre|ur|you are|its) (?:\w+ )?spam\w*\b|"
        r"\breport\w* (?:you|this|as spam)\b",
    ),
    # --- Spanish, revoke.
    _rule(
        "es.numero-equivocado",
        _R,
        r"\bnumero (?:equivocado|incorrecto|errado)\b|"
        r"\bse equivoc\w* de numero\b|\bpersona equivocada\b",
    ),
    _rule(
        "es.dejar-de",
        _R,
        r"\b(?:para|pare|paren|parar|deja|deje|dejen|dejar|dejad|"
        r"terminen|detengan|detenga|dejo) (?:ya )?de (?:mand|envi|escrib|text|mensaj|"
        r"molest|llam|contact|spam|recib)\w*",
    ),
    _rule(
        "es.no-envien",
        _R,
        r"\bno (?:me )?(?:vuelvan a |vuelva a |vuelvas a )?(?:manden|mande"
        r"|mandes|mandar|envien|envie|envies|enviar|escriban|escriba|escribas|escribir|"
        r"molesten|moleste|contacten|contacte|llamen|llame|textees|texteen|spameen)\b",
    ),
    _rule(
        "es.no-quiero",
        _R,
        r"\bno (?:quiero|deseo|queremos|necesito) (?:recibir|mas|que me|"
        r"seguir recibiendo|estos|sus|tus|ningun|mensajes|textos)",
    ),
    _rule("es.ya-no", _R, r"\bya no (?:me )?(?:manden|envien|escriban|quiero|mas)\b"),
    _rule(
        "es.no-mas",
        _R,
        r"\bno (?:mas|quiero mas) (?:mensajes|textos|sms|msj|promociones)\b|"
        r"^(?:ya )?no mas(?: (?:por favor|porfa|gracias|ya))*$",
    ),
    _rule(
        "es.borrar-me",
        _R,
        r"\b(?:borr|quit|sac|saq|elimin|remuev|remov|excluy)\w*me\b|"
        r"\b(?:borr|quit|sac|elimin|remuev|remov)\w* (?:mi numero|mi telefono|de (?:la|su|"
        r"tu|esta|sus) lista)",
    ),
    _rule(
        "es.cancelar-mensajes",
        _R,
        r"\bcancel\w* (?:los |estos |sus |mis |las )?(?:mensajes|textos|sms|notificaciones|"
        r"alertas|promociones)\b",
    ),
    _rule(
        "es.baja",
        _R,
        r"\b(?:de|dar|darme|denme|dame|deme) (?:de )?baja\b|"
        r"\b(?:desuscrib|desinscrib|desabon|cancelar (?:la |mi )?suscripcion)\w*",
    ),
    _rule(
        "es.en-paz",
        _R,
        r"\b(?:dejame|dejeme|dejenme|dejenos) (?:en paz|tranquil\w*)\b|"
        r"^(?:basta|ya basta|basta ya)$",
    ),
    # --- French, revoke.
    _rule("fr.mauvais-numero", _R, r"\b(?:mauvais|faux) numero\b|\berreur de numero\b"),
    _rule(
        "fr.arreter-de",
        _R,
        r"\barret\w* (?:de |d )?(?:m |me |nous |m)?(?:envoy|ecrir|"
        r"contact|harcel|text|appel|spam|derang)\w*|\barret\w* (?:les|vos|ces) (?:sms|"
        r"messages|textos|texto)",
    ),
    _rule(
        "fr.ne-plus",
        _R,
        r"\bne (?:m|me|nous) ?(?:envoy|ecriv|contact|appel|derang)\w* "
        r"plus\b|\b(?:menvoy|mecriv|mappel|mderang)\w* plus\b|\bplus de (?:sms|messages|textos)"
        r"\b|\bne (?:veu|souhait)\w* plus (?:recevoir|de (?:sms|messages)|etre contacte)",
    ),
    _rule(
        "fr.retirez-moi",
        _R,
        r"\b(?:retir|supprim|enlev|effac|desinscri|desabonn|radi)\w*"
        r"(?: moi| nous)?\b(?: de (?:la|votre|vos|cette) liste)?",
    ),
    _rule(
        "fr.tranquille",
        _R,
        r"\blaiss\w* (?:moi|nous) (?:tranquille|en paix)\b|"
        r"^(?:ca suffit|assez)$",
    ),
    # --- Portuguese, revoke.
    _rule("pt.numero-errado", _R, r"\bnumero errado\b|\bpessoa errada\b"),
    _rule(
        "pt.parar-de",
        _R,
        r"\b(?:pare|parem|para|parar|deixe|deixem|deixa) de (?:me )?"
        r"(?:mand|envi|escrev|lig|incomod|contat)\w*",
    ),
    _rule(
        "pt.nao-quero",
        _R,
        r"\bnao (?:quero|desejo) (?:mais )?(?:receber|mensagens|sms)|"
        r"\bnao (?:me )?(?:mande|mandem|envie|enviem|ligue|liguem|contate) mais\b",
    ),
    _rule(
        "pt.tirar-me",
        _R,
        r"\b(?:me )?(?:tire|tirem|remova|removam|exclua|excluam|retire|"
        r"apague|apaguem) (?:o )?(?:me |meu numero |meu )?(?:da|dessa|desta|de sua|do) "
        r"(?:lista|cadastro)|\b(?:descadastr|desinscrev|cancelar (?:a |minha )?inscricao)\w*",
    ),
    _rule("pt.em-paz", _R, r"\b(?:me )?deix\w* em paz\b|^(?:chega|basta)$"),
    # --- English, unclear: may be a revocation; ask once and flag it.
    _rule(
        "en.who-is-this",
        _U,
        r"^(?:what is this|whats this|what is this number|who dis|who this)$|"
        r"\b(?:who (?:is|s) this|whos (?:this|texting|messaging)|who (?:is )?"
        r"(?:texting|messaging) me|who are you|(?:dont|do not) know (?:you|who you are|this "
        r"number)|how did you get"
        r" (?:my|this) (?:number|#)|where did you get (?:my|this) (?:number|#))\b",
    ),
    _rule("en.not-interested", _U, r"\bnot interested\b|\bno interest\b"),
    _rule(
        "en.never-signed-up",
        _U,
        r"\b(?:never|didnt|did not) (?:sign|signed|subscribe|"
        r"subscribed|opt|optin|opted|agree|agreed|ask|asked|gave you|give you)\b",
    ),
    _rule(
        "en.keep-texting",
        _U,
        r"\bwhy (?:do|are|does|did) (?:you|u|yall|you guys) (?:keep )?"
        rf"(?:{_EN_CONTACT_STEMS})",
    ),
    _rule(
        "en.stop-mention",
        _U,
        rf"^(?:please |ok |just )?{_STOP} (?:this|that|these|all|"
        r"everything|now|it)\b",
    ),
    _rule(
        "es.quien-es",
        _U,
        r"\bquien (?:es|eres|habla|me escribe|me manda|me envia)\b|\bde donde sacaron mi numero\b",
    ),
    _rule("es.no-interesa", _U, r"\bno me interesa\b"),
    _rule("fr.qui-est-ce", _U, r"\bqui (?:est ce|etes vous|est la)\b|\bpas interesse\w*\b"),
    _rule("pt.quem-e", _U, r"\bquem (?:e|fala)\b|\bnao tenho interesse\b"),
)
"""In order: the first rule that matches a sentence decides it."""

_REQUEST_RULES = frozenset({"en.request-stop"})
_POLITE_QUESTION = re.compile(
    r"^(?:(?:can|could|would|will|wont|why wont|why dont) (?:you|u|ya|yall|you guys)|please|pls"
    r"|kindly) "
    r"|^(?:(?:me|nos) )?(?:pueden|puede|podrian|podria|puedes|por favor) "
    r"|^(?:pouvez|pourriez|peux) |"
    r"^(?:pode|podem|poderia) "
)
_THIRD_PARTY = re.compile(
    r"\b(?:he|she|hes|shes|him|her|his|they|them|theyre|my (?:ex|mom|mother|dad|father|boss|husband"
    r"|wife|brother|sister|friend|son|daughter|kid|kids|neighbor|neighbour|coworker|boyfriend"
    r"|girlfriend|roommate|landlord))\b(?! (?:number|phone))"
)
_TIME_LIMITED = re.compile(
    r"\b(?:before|after|until|till|between) (?:\d+|noon|midnight|work|lunch|dinner|\w+ ?[ap]m)"
    r"|\b(?:at night|in the morning|on weekends|on sundays|during work|so early|so late)\b"
)
"""A request to text at other times, not to stop: ask rather than opt out."""
_LAUGHTER = re.compile(r"[😂🤣😆😹]|\b(?:lol+|lmao+|haha\w*|jaja\w*|hehe\w*|rofl)\b", re.IGNORECASE)
"""Stop as in "stop, you're killing me": with laughter, a revocation becomes a question."""
_SENTENCE_END = re.compile(r"(?<=[.!?;:,\n…。！？、，])|\n")
_APOSTROPHES = re.compile(r"['ʼ]")
_NON_WORD = re.compile(r"[^\w]+|_")
_BLANK = "~"


def sentences(text: str) -> list[str]:
    """The raw sentences (clauses) of a message: split after ``. ! ? ; : ,`` and at line
    breaks, so "Stop, I'm not interested" is read as "Stop" and "I'm not interested"."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _clean(raw: str) -> str:
    normalised = normalise(raw.replace("#", " number "))
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", normalised)).split())


def _is_question(raw: str) -> bool:
    stripped = raw.strip()
    return ("?" in stripped or "¿" in stripped or "？" in stripped) and "!" not in stripped


def _keyword_sentence(words: list[str], lists: KeywordLists) -> tuple[str, str] | None:
    """(keyword, language) when the sentence is opt-out keywords and politeness words only."""
    found: tuple[str, str] | None = None
    position = 0
    while position < len(words):
        matched = 0
        for length in (3, 2, 1):
            chunk = " ".join(words[position : position + length])
            if len(words) - position < length:
                continue
            if length == 1 and chunk in _STOP_WORDS:
                found = found or (chunk, _STOP_WORDS[chunk])
                matched = 1
                break
            keyword = lists.lookup(chunk)
            if keyword is not None and keyword.klass in (
                KeywordClass.OPT_OUT,
                KeywordClass.OPT_OUT_ALL,
            ):
                found = found or (keyword.key, keyword.language)
                matched = length
                break
            if chunk in _FILLER:
                matched = length
                break
        if not matched:
            return None
        position += matched
    return found


def _first_keyword(words: list[str], lists: KeywordLists) -> tuple[str, str] | None:
    for length in (2, 1):
        keyword = lists.lookup(" ".join(words[:length])) if len(words) >= length else None
        if keyword is not None and keyword.klass in (
            KeywordClass.OPT_OUT,
            KeywordClass.OPT_OUT_ALL,
        ):
            return keyword.key, keyword.language
    return None


def _sentence(raw: str, lists: KeywordLists) -> Revocation:
    cleaned = _clean(raw)
    if not cleaned:
        return Revocation(Outcome.NONE, None, None, None)
    guards: list[GuardHit] = []
    text = cleaned
    for name, pattern in GUARDS:
        for hit in list(pattern.finditer(text)):
            taken = hit.group().strip()
            if taken and _BLANK not in taken:
                guards.append(GuardHit(name, taken))
        text = pattern.sub(lambda m: " ".join(_BLANK for _ in m.group().split()) + " ", text)
    text = " ".join(text.split())
    words = [w for w in text.split() if w != _BLANK]
    found = _keyword_sentence(text.split(), lists) if _BLANK not in text else None
    if found is not None:
        verdict = Revocation(Outcome.REVOKE, "keyword-sentence", found[0], found[1], ())
    else:
        verdict = Revocation(Outcome.NONE, None, None, None)
        for rule in RULES:
            match = rule.pattern.search(text)
            if match is not None and _BLANK not in match.group():
                verdict = Revocation(rule.outcome, rule.name, match.group(), rule.language)
                break
        else:
            first = _first_keyword(words, lists) if words and words == text.split() else None
            if first is not None:
                verdict = Revocation(Outcome.UNCLEAR, "keyword-first", first[0], first[1])
    if verdict.outcome is Outcome.REVOKE:
        downgrade = _downgrade(raw, cleaned, verdict)
        if downgrade is not None:
            guards.append(downgrade)
            verdict = Revocation(Outcome.UNCLEAR, verdict.rule, verdict.phrase, verdict.language)
    return Revocation(
        verdict.outcome, verdict.rule, verdict.phrase, verdict.language, tuple(guards)
    )


def _downgrade(raw: str, cleaned: str, verdict: Revocation) -> GuardHit | None:
    if verdict.rule == "keyword-sentence":
        return None
    if (
        _is_question(raw)
        and verdict.rule not in _REQUEST_RULES
        and not _POLITE_QUESTION.search(cleaned)
    ):
        return GuardHit("question", cleaned)
    channel = re.search(_OTHER_CHANNEL, cleaned)
    if channel is not None and not re.search(r"\b(?:te?xts?|sms|messages?|msgs?)\b", cleaned):
        return GuardHit("other-channel", channel.group())
    if verdict.rule not in ("en.wrong-number",):
        third = _THIRD_PARTY.search(cleaned)
        if third is not None:
            return GuardHit("third-party", third.group())
    limited = _TIME_LIMITED.search(cleaned)
    if limited is not None:
        return GuardHit("time-limited", limited.group())
    return None


def classify_revocation(text: str, lists: KeywordLists = DEFAULT_LISTS) -> Revocation:
    """The plain-language reading of ``text`` (see the module notes). ``lists`` are the keyword
    lists in force: a sentence made of their opt-out keywords and politeness words revokes."""
    text = text[:MAX_TEXT]
    best = Revocation(Outcome.NONE, None, None, None)
    guards: list[GuardHit] = []
    for raw in sentences(text):
        verdict = _sentence(raw, lists)
        guards.extend(verdict.guards)
        if _STRENGTH[verdict.outcome] > _STRENGTH[best.outcome]:
            best = verdict
    laughter = _LAUGHTER.search(text) if best.outcome is Outcome.REVOKE else None
    if laughter is not None:
        guards.append(GuardHit("laughter", laughter.group()))
        best = Revocation(Outcome.UNCLEAR, best.rule, best.phrase, best.language)
    return Revocation(best.outcome, best.rule, best.phrase, best.language, tuple(_unique(guards)))


def _unique(hits: Iterable[GuardHit]) -> list[GuardHit]:
    return list(dict.fromkeys(hits))
