"""Brands and per-sender consent defaults in the TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import BrandSpec, load_settings
from gateway.errors import ConfigError
from policy.consent import DefaultConsent, OptOutScope


def settings_from(tmp_path: Path, text: str) -> object:
    config = tmp_path / "stopgate.toml"
    config.write_text(text)
    return load_settings(config_file=str(config), environ={})


def test_brands_and_defaults_are_read_canonical(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        """
        [brands.Acme]
        numbers = ["(650) 555-0100", "+16505550199", "MG0123456789ABCDEF0123456789abcdef", "12345"]
        consent_default = "require-opt-in"

        [brands.other]
        numbers = ["+16505550177"]
        opt_out_scope = "pair"

        [consent_defaults]
        "650-555-0100" = "allow"
        """,
    )
    assert settings.brands == (  # type: ignore[attr-defined]
        BrandSpec(
            "brand:acme",
            ("+16505550100", "+16505550199", "MG0123456789abcdef0123456789abcdef", "sc:12345"),
            OptOutScope.BRAND,
            DefaultConsent.REQUIRE_OPT_IN,
        ),
        BrandSpec("brand:other", ("+16505550177",), OptOutScope.PAIR, None),
    )
    assert settings.consent_defaults == {"+16505550100": DefaultConsent.ALLOW}  # type: ignore[attr-defined]


def test_no_brands_by_default() -> None:
    settings = load_settings(environ={})
    assert (settings.brands, dict(settings.consent_defaults)) == ((), {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('brands = ["+16505550100"]', "brands must be tables"),
        ("[brands.acme]\nnumbers = 5", "numbers must be an array"),
        ("[brands.acme]\nopt_out_scope = 'brand'", "numbers must be an array"),
        ('[brands."a b"]\nnumbers = []', "bad-brand-name"),
        ("[brands.acme]\nnumbers = ['+999 1']", "brands.acme: from address"),
        ("[brands.acme]\nnumbers = ['*']", "wildcard-not-allowed"),
        ("[brands.acme]\nnumbers = ['brand:x']", "wildcard-not-allowed"),
        ("[brands.acme]\nnumbers = []\nopt_out_scope = 'all'", "bad value for brands"),
        ("[brands.acme]\nnumbers = []\nconsent_default = 'maybe'", "bad value for brands"),
        ("[brands.acme]\nnumbers = []\ncolour = 'red'", "unknown setting 'colour'"),
        (
            "[brands.a]\nnumbers = ['+16505550100']\n[brands.b]\nnumbers = ['(650) 555-0100']",
            "+16505550100 is in two brands",
        ),
        ("[consent_defaults]\n'+16505550100' = 'never'", "bad value for consent_defaults"),
        ("[consent_defaults]\n'*' = 'allow'", "wildcard-not-allowed"),
        ("consent_defaults = 'allow'", "consent_defaults must be a table"),
    ],
)
def test_bad_brand_settings_are_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("+", r"\+").replace("*", r"\*")):
        settings_from(tmp_path, text)
