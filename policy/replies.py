"""Confirmation texts for opt-out, opt-in and help keywords, in the keyword's language, and the
one clarifying text (``clarify``) answering a message that may be a plain-language revocation.

An opt-out confirmation (47 CFR 64.1200(a)(12)) confirms and says how to opt back in; it never
markets. A help reply carries the brand, a support contact, "Msg & data rates may apply" and the
opt-out instructions. The clarifying text (allowed once by the FCC rules) only asks whether
the person wants to stop, and how. Templates use ``{brand}`` and ``{support}``; configuration may
replace any of them per class and language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OPT_OUT = "opt_out"
OPT_OUT_ALL = "opt_out_all"
OPT_IN = "opt_in"
HELP = "help"
CLARIFY = "clarify"

DEFAULT_TEMPLATES: Mapping[str, Mapping[str, str]] = {
    OPT_OUT: {
        "en": "{brand}: You are unsubscribed and will get no more messages from this number. "
        "Reply START to resubscribe.",
        "es": "{brand}: Se ha dado de baja y no recibirá más mensajes de este número. "
        "Responda START para volver a suscribirse.",
        "fr": "{brand}: Vous êtes désinscrit et ne recevrez plus de messages de ce numéro. "
        "Répondez START pour vous réinscrire.",
        "pt": "{brand}: Você cancelou a inscrição e não receberá mais mensagens deste número. "
        "Responda START para se inscrever novamente.",
    },
    OPT_OUT_ALL: {
        "en": "{brand}: You are unsubscribed and will get no more messages from any of our "
        "numbers. Reply START to resubscribe.",
        "es": "{brand}: Se ha dado de baja y no recibirá más mensajes de ninguno de nuestros "
        "números. Responda START para volver a suscribirse.",
        "fr": "{brand}: Vous êtes désinscrit et ne recevrez plus de messages d'aucun de nos "
        "numéros. Répondez START pour vous réinscrire.",
        "pt": "{brand}: Você cancelou a inscrição e não receberá mais mensagens de nenhum dos "
        "nossos números. Responda START para se inscrever novamente.",
    },
    OPT_IN: {
        "en": "{brand}: You are subscribed again. Msg & data rates may apply. "
        "Reply HELP for help, STOP to opt out.",
        "es": "{brand}: Se ha vuelto a suscribir. Pueden aplicarse tarifas de mensajes y datos. "
        "Responda AYUDA para ayuda, STOP para darse de baja.",
        "fr": "{brand}: Vous êtes de nouveau inscrit. Des frais de messages et de données "
        "peuvent s'appliquer. Répondez AIDE pour de l'aide, STOP pour vous désinscrire.",
        "pt": "{brand}: Você se inscreveu novamente. Podem ser cobradas tarifas de mensagens e "
        "dados. Responda AJUDA para ajuda, STOP para cancelar.",
    },
    HELP: {
        "en": "{brand}: For help, contact {support}. Msg & data rates may apply. "
        "Reply STOP to opt out.",
        "es": "{brand}: Para ayuda, contacte a {support}. Pueden aplicarse tarifas de mensajes "
        "y datos. Responda STOP para darse de baja.",
        "fr": "{brand}: Pour de l'aide, contactez {support}. Des frais de messages et de "
        "données peuvent s'appliquer. Répondez STOP pour vous désinscrire.",
        "pt": "{brand}: Para ajuda, contate {support}. Podem ser cobradas tarifas de mensagens "
        "e dados. Responda STOP para cancelar.",
    },
    CLARIFY: {
        "en": "{brand}: Do you want to stop receiving messages from this number? "
        "Reply STOP to unsubscribe.",
        "es": "{brand}: ¿Desea dejar de recibir mensajes de este número? "
        "Responda STOP para darse de baja.",
        "fr": "{brand}: Voulez-vous ne plus recevoir de messages de ce numéro ? "
        "Répondez STOP pour vous désinscrire.",
        "pt": "{brand}: Deseja parar de receber mensagens deste número? "
        "Responda STOP para cancelar.",
    },
}


@dataclass(frozen=True, slots=True)
class ReplyTemplates:
    brand: str = "Our team"
    support: str = "our support team"
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def text(self, klass: str, language: str | None) -> str | None:
        """The reply for a keyword class in ``language`` (falling back to English), or None
        when the class gets no reply."""
        for table in (self.overrides.get(klass), DEFAULT_TEMPLATES.get(klass)):
            if not table:
                continue
            template = table.get(language or "en") or table.get("en")
            if template:
                return template.format(brand=self.brand, support=self.support)
        return None
