"""nlu/server.py hands the shared secret to `rasa run` so that argparse cannot misread it."""

from __future__ import annotations

import sys

import pytest
import rasa.__main__

from nlu import server


def test_a_secret_that_starts_with_a_dash_reaches_rasa_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(rasa.__main__, "main", lambda: seen.append(list(sys.argv)))
    monkeypatch.setenv("GRIDBOT_SECRET", "-Abcdefghijklmnopqrstuvwxyz012345")
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert server.main(["run", "--enable-api", "-i", "127.0.0.1"]) == 0
    [argv] = seen
    assert "--jwt-secret=-Abcdefghijklmnopqrstuvwxyz012345" in argv
