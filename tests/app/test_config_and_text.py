"""Settings from the environment, and Chinese text normalisation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.config import Settings
from core.text import chinese_to_int, normalise


def test_defaults_bind_locally_and_store_under_var(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "RASA_URL", "TIMEZONE", "LOG_LEVEL", "BIND_HOST"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.bind_host == "127.0.0.1"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("var/gridbot.db")
    assert s.timezone == "Asia/Shanghai" and s.telegram_bot_token is None


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / ".env"
    env.write_text("RASA_URL=http://127.0.0.1:6005\nLOG_LEVEL=debug\n", encoding="utf-8")
    monkeypatch.setenv("ACTION_SERVER_PORT", "6055")
    s = Settings(_env_file=env)  # type: ignore[call-arg]
    assert s.rasa_url == "http://127.0.0.1:6005"
    assert s.action_server_port == 6055
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(("name", "value"), [("TIMEZONE", "Mars/Olympus"), ("LOG_LEVEL", "LOUD")])
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("三號樓", "3号楼"), ("十二栋二单元", "12栋2单元"), ("５栋２单元３０１室", "5栋2单元301室"),
     ("和平裡小區東門", "和平里小区东门"), ("  电梯   坏了 ", "电梯 坏了"), ("东门", "东门")],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(("text", "value"), [("三", 3), ("十", 10), ("十二", 12), ("二十", 20),
                                            ("一百零五", 105), ("一二", 12), ("", None), ("三x", None)])
def test_chinese_numbers(text: str, value: int | None) -> None:
    assert chinese_to_int(text) == value


def test_the_shared_secret_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.secret import SecretError

    monkeypatch.setenv("GRIDBOT_SECRET", "  ")
    assert Settings(_env_file=None).gridbot_secret is None  # type: ignore[call-arg]
    monkeypatch.setenv("GRIDBOT_SECRET", "s" * 30)
    s = Settings(_env_file=None, bind_host="0.0.0.0")  # type: ignore[call-arg]
    assert s.shared_secret() == "s" * 30 and "s" * 30 not in repr(s)
    monkeypatch.delenv("GRIDBOT_SECRET")
    with pytest.raises(SecretError, match="BIND_HOST=0.0.0.0"):
        Settings(_env_file=None, bind_host="0.0.0.0").shared_secret()  # type: ignore[call-arg]
