"""Settings: defaults of DESIGN §4.1, precedence, coercion, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Secret, Settings, load_settings
from gateway.errors import ConfigError
from policy.consent import DefaultConsent
from policy.footer import FooterMode


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings(environ={})
    assert settings.listen == "127.0.0.1:8080"
    assert settings.store == "sqlite:///./stopgate.db"
    assert settings.workers == 1
    assert settings.mode == "enforce"
    assert settings.consent_default is DefaultConsent.ALLOW
    assert settings.footer is FooterMode.OFF
    assert settings.default_region == "US"
    assert settings.max_body_bytes >= 2 * 1024 * 1024


def test_environment_beats_file_and_options_beat_environment(tmp_path: Path) -> None:
    config = tmp_path / "stopgate.toml"
    config.write_text(
        'listen = "127.0.0.1:9000"\nstore = "sqlite:///file.db"\nfooter = "first"\n'
        '[messaging_services]\nMGabcdefabcdefabcdefabcdefabcdefab = ["(650) 555-0100"]\n'
    )
    env = {"STOPGATE_CONFIG": str(config), "STOPGATE_STORE": "sqlite:///env.db"}
    settings = load_settings(environ=env, overrides={"listen": "127.0.0.1:9100", "store": None})
    assert settings.listen == "127.0.0.1:9100"
    assert settings.store == "sqlite:///env.db"
    assert settings.footer is FooterMode.FIRST
    assert settings.messaging_services == {"MGabcdefabcdefabcdefabcdefabcdefab": ("+16505550100",)}


@pytest.mark.parametrize(
    "env",
    [
        {"STOPGATE_MODE": "yolo"},
        {"STOPGATE_WORKERS": "0"},
        {"STOPGATE_WORKERS": "many"},
        {"STOPGATE_FOOTER": "sometimes"},
        {"STOPGATE_CONSENT_DEFAULT": "maybe"},
        {"STOPGATE_TWILIO_UPSTREAM": "ftp://x"},
        {"STOPGATE_CONFIG": "/nonexistent/stopgate.toml"},
    ],
)
def test_bad_settings_are_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(environ=env)


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text('lisen = "typo"\n')
    with pytest.raises(ConfigError, match="lisen"):
        load_settings(config_file=str(config), environ={})


def test_secrets_never_appear_in_repr_str_or_redacted() -> None:
    secret = "super-secret-value"
    settings = load_settings(
        environ={
            "STOPGATE_ADMIN_TOKEN": secret,
            "STOPGATE_TWILIO_AUTH_TOKEN": secret,
            "STOPGATE_RINGCENTRAL_CLIENT_SECRET": secret,
            "STOPGATE_RINGCENTRAL_JWT": secret,
            "STOPGATE_RINGCENTRAL_VERIFICATION_TOKEN": secret,
        }
    )
    for text in (repr(settings), str(settings), str(settings.redacted())):
        assert secret not in text
    assert isinstance(settings.admin_token, Secret)
    assert settings.admin_token.reveal() == secret


def test_listen_host_port() -> None:
    assert Settings(listen="0.0.0.0:81").listen_host_port == ("0.0.0.0", 81)
    assert Settings(listen="[::1]:82").listen_host_port == ("::1", 82)
    with pytest.raises(ConfigError):
        _ = Settings(listen="nowhere").listen_host_port


def test_a_password_in_the_store_url_is_masked() -> None:
    settings = load_settings(environ={"STOPGATE_STORE": "postgresql://app:hunter2@db:5432/sg"})
    assert "hunter2" not in str(settings.redacted())
    assert "hunter2" not in repr(settings)
    assert settings.redacted()["store"] == "postgresql://app:********@db:5432/sg"


def test_plain_language_revocation_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    defaults = load_settings(environ={})
    assert defaults.plain_language is True
    assert defaults.clarification_window == 30 * 86_400
    config = tmp_path / "stopgate.toml"
    config.write_text("plain_language = false\nclarification_window = 3600\n")
    from_file = load_settings(environ={"STOPGATE_CONFIG": str(config)})
    assert (from_file.plain_language, from_file.clarification_window) == (False, 3600.0)
    for off in ("false", "0", "no", "off"):
        assert load_settings(environ={"STOPGATE_PLAIN_LANGUAGE": off}).plain_language is False
    on_again = load_settings(
        environ={"STOPGATE_CONFIG": str(config), "STOPGATE_PLAIN_LANGUAGE": "1"}
    )
    assert on_again.plain_language is True
