"""The scrubber skips a credential pattern whose words do not occur in an ASCII line: it must
mask exactly what running every pattern masks."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.log_lines import CREDENTIAL_PATTERNS, mask_credentials, masked

FRAGMENTS = [
    "Authorization: ",
    "AUTHORIZATION=",
    "'authorization': '",
    "Proxy-Authorization: Basic ",
    "bearer ",
    "Basic ",
    "BEARER\t",
    "postgresql://user:",
    "@db.example/x",
    "https://",
    "X-Twilio-Signature: ",
    "verification-token=",
    "Validation-Token: ",
    "x-stopgate-signature=",
    "dGVzdDp0ZXN0MTIzNDU2",
    "abcdefgh12345678",
    '"',
    "'",
    " ",
    ",",
    "}",
    "\\",
    "ſ",  # matches "s" under IGNORECASE, not under str.lower()
    "ı",  # dotless i: matches "i" under IGNORECASE
    "K",  # Kelvin sign: matches "k"
    "é",
]


def every_pattern(text: str) -> str:
    for pattern in CREDENTIAL_PATTERNS:
        text = pattern.sub(masked, text)
    return text


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=12).map("".join))
@example("bearer abcdefgh12345678")
@example("Baſic dGVzdDp0ZXN0MTIzNDU2")
@example("Authorızation: secret")
@example('{"msg":"send decided","to":["+16505550111"],"decision":"allowed"}')
def test_the_shortcut_masks_exactly_what_every_pattern_masks(text: str) -> None:
    assert mask_credentials(text) == every_pattern(text)


def test_the_first_pass_words_cover_every_credential_word() -> None:
    from gateway.log_lines import ANY_CREDENTIAL_WORD, CREDENTIAL_WORDS

    for words in CREDENTIAL_WORDS:
        for word in words:
            assert any(short in word for short in ANY_CREDENTIAL_WORD), word
