"""Every process boundary is authenticated (core/secret.py), checked on the real servers:
Rasa's HTTP API (a token signed with the secret), our Rasa input channel and the action server
(the secret in X-Gridbot-Secret); the action server's body limits; a server open to the
network refuses to start without a configured secret."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from bot.rasa_client import RasaClient, RasaRefused
from core import secret as shared
from core.config import PROJECT_ROOT
from tests.app.stack import TEST_SECRET, Stack, api_headers, channel_headers, stack_env

WRONG = "w" * 43
JSON = {"Accept": "application/json"}
NO_ACTION = {  # a well-formed action call for an action that does not exist: 404 once let in
    "next_action": "action_nobody_registered", "sender_id": "auth-test", "version": "3.6.2", "domain": {},
    "tracker": {"sender_id": "auth-test", "slots": {}, "latest_message": {}, "events": [], "paused": False,
                "followup_action": None, "active_loop": {}, "latest_action_name": None},
}


@pytest.fixture(scope="module")
def stack(rasa_stack: Stack) -> Stack:
    return rasa_stack


def _expired_token() -> dict[str, str]:
    return {"Authorization": f"Bearer {shared.rasa_jwt(TEST_SECRET, now=time.time() - 3600)}"}


REFUSED_HEADERS = {
    "no header": {},
    "wrong secret": api_headers(WRONG),
    "expired token": _expired_token(),
    "the raw secret": {"Authorization": f"Bearer {TEST_SECRET}"},
    "garbage": {"Authorization": "Bearer abc.def.ghi"},
}
API_ROUTES = [("GET", "/status", None), ("POST", "/model/parse", {"text": "你好"}),
              ("GET", "/conversations/auth-test/tracker", None), ("GET", "/domain", None),
              ("POST", "/conversations/auth-test/messages", {"text": "你好", "sender": "user"})]


@pytest.mark.parametrize("how", list(REFUSED_HEADERS))
def test_rasa_api_refuses_requests_without_the_token(stack: Stack, how: str) -> None:
    for method, path, body in API_ROUTES:
        reply = httpx.request(method, stack.rasa_url + path, json=body, timeout=30,
                              headers={**REFUSED_HEADERS[how], **JSON})
        assert reply.status_code == 401, (method, path, reply.text)
    # Rasa's own --auth-token (a query parameter) is not enabled either
    assert httpx.get(f"{stack.rasa_url}/status", params={"token": TEST_SECRET}, timeout=30).status_code == 401


def test_rasa_api_accepts_the_token(stack: Stack) -> None:
    for method, path, body in API_ROUTES[:4]:
        reply = httpx.request(method, stack.rasa_url + path, json=body, headers={**api_headers(), **JSON},
                              timeout=30)
        assert reply.status_code == 200, (method, path, reply.text)
    parsed = httpx.post(f"{stack.rasa_url}/model/parse", json={"text": "3号楼电梯坏了"},
                        headers=api_headers(), timeout=30).json()
    assert parsed["intent"]["name"] == "complaint_elevator"


def test_the_model_cannot_be_replaced_or_unloaded_without_the_token(stack: Stack, tmp_path: Path) -> None:
    before = httpx.get(f"{stack.rasa_url}/status", headers=api_headers(), timeout=30).json()
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not a model")
    for headers in REFUSED_HEADERS.values():
        put = httpx.put(f"{stack.rasa_url}/model", json={"model_file": str(other)}, headers=headers, timeout=30)
        assert put.status_code == 401, put.text
        put = httpx.put(f"{stack.rasa_url}/model", json={"model_server": {"url": "http://127.0.0.1:9/m.tar.gz"}},
                        headers=headers, timeout=30)
        assert put.status_code == 401, put.text
        delete = httpx.delete(f"{stack.rasa_url}/model", headers=headers, timeout=30)
        assert delete.status_code == 401, delete.text
        train = httpx.post(f"{stack.rasa_url}/model/train", content=b"{}", headers=headers, timeout=30)
        assert train.status_code == 401, train.text
    after = httpx.get(f"{stack.rasa_url}/status", headers=api_headers(), timeout=30).json()
    assert after["model_id"] == before["model_id"] and after["model_file"] == before["model_file"]


def test_rasas_own_rest_channel_is_off(stack: Stack) -> None:
    for headers in ({}, channel_headers()):
        reply = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", json={"sender": "x", "message": "你好"},
                           headers=headers, timeout=30)
        assert reply.status_code == 404


@pytest.mark.parametrize("headers", [{}, channel_headers(WRONG), channel_headers(TEST_SECRET[:-1]),
                                     channel_headers(TEST_SECRET + "x"), api_headers()],
                         ids=["none", "wrong", "prefix", "longer", "api-token"])
def test_the_channel_refuses_requests_without_the_secret(stack: Stack, headers: dict[str, str]) -> None:
    reply = httpx.post(stack.channel_url, json={"sender": "auth-test", "message": "你好"}, headers=headers, timeout=30)
    assert reply.status_code == 401 and reply.json() == {"error": "unauthorized"}
    assert httpx.get(stack.channel_url.rsplit("/", 1)[0] + "/", headers=headers, timeout=30).status_code == 401


def test_the_channel_accepts_the_secret(stack: Stack) -> None:
    reply = httpx.post(stack.channel_url, json={"sender": "auth-test", "message": "你好"},
                       headers=channel_headers(), timeout=30)
    assert reply.status_code == 200 and reply.json() and reply.json()[0]["text"]
    assert httpx.get(stack.channel_url.rsplit("/", 1)[0] + "/", headers=channel_headers(), timeout=30).json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, channel_headers(WRONG), api_headers(), {"X-Gridbot-Secret": ""}],
                         ids=["none", "wrong", "api-token", "empty"])
def test_the_action_server_refuses_requests_without_the_secret(stack: Stack, headers: dict[str, str]) -> None:
    for method, path, body in [("POST", "/webhook", NO_ACTION), ("GET", "/health", None), ("GET", "/actions", None)]:
        reply = httpx.request(method, stack.action_url + path, json=body, headers=headers, timeout=30)
        assert reply.status_code == 401, (path, reply.text)
    # nor in the query string
    reply = httpx.post(f"{stack.action_url}/webhook", params={"token": TEST_SECRET}, json=NO_ACTION, timeout=30)
    assert reply.status_code == 401


def test_the_action_server_accepts_the_secret(stack: Stack) -> None:
    assert httpx.get(f"{stack.action_url}/health", headers=channel_headers(), timeout=30).json() == {"status": "ok"}
    names = [a["name"] for a in httpx.get(f"{stack.action_url}/actions", headers=channel_headers(), timeout=30).json()]
    assert "action_submit_report" in names
    reply = httpx.post(f"{stack.action_url}/webhook", json=NO_ACTION, headers=channel_headers(), timeout=30)
    assert reply.status_code == 404 and reply.json()["action_name"] == "action_nobody_registered"
    # a deflate body within the limit is inflated and handled as usual
    reply = httpx.post(f"{stack.action_url}/webhook", content=zlib.compress(json.dumps(NO_ACTION).encode()),
                       headers={**channel_headers(), "Content-Encoding": "deflate"}, timeout=30)
    assert reply.status_code == 404 and reply.json()["action_name"] == "action_nobody_registered"


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_the_action_server_refuses_big_bodies_and_deflate_bombs(stack: Stack) -> None:
    pid = int(dict(re.findall(r"started (\w+) \(pid (\d+)\)", stack.output()))["actions"])
    peak = _peak_rss_kb(pid)
    bomb = zlib.compress(b"\0" * (512 * 1024 * 1024), 9)  # 512 MiB of zeros in about 0.5 MB
    assert len(bomb) < 1024 * 1024
    deflate = {**channel_headers(), "Content-Encoding": "deflate", "Content-Type": "application/json"}
    reply = httpx.post(f"{stack.action_url}/webhook", content=bomb, headers=deflate, timeout=60)
    assert reply.status_code == 413, reply.text
    # without the secret it is not even inflated
    reply = httpx.post(f"{stack.action_url}/webhook", content=bomb,
                       headers={"Content-Encoding": "deflate"}, timeout=60)
    assert reply.status_code == 401
    # a body over the limit, as it is
    big = b'{"next_action": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    reply = httpx.post(f"{stack.action_url}/webhook", content=big, headers=channel_headers(), timeout=60)
    assert reply.status_code == 413, reply.text[:200]
    # a broken stream and other encodings
    reply = httpx.post(f"{stack.action_url}/webhook", content=bomb[:1000], headers=deflate, timeout=60)
    assert reply.status_code == 400
    reply = httpx.post(f"{stack.action_url}/webhook", content=bomb,
                       headers={**deflate, "Content-Encoding": "gzip"}, timeout=60)
    assert reply.status_code == 415
    # the server is still there, and never held the inflated bomb (512 MiB) in memory
    assert httpx.get(f"{stack.action_url}/health", headers=channel_headers(), timeout=30).status_code == 200
    assert _peak_rss_kb(pid) - peak < 64 * 1024


def test_the_secret_file_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret"
    first = shared.load_or_create(path)
    assert len(first) >= shared.MIN_LENGTH and shared.load_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path, 0o644)  # loosened by hand: made private again when read
    assert shared.load_or_create(path) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_resolve_prefers_the_configured_secret_and_checks_it(tmp_path: Path) -> None:
    configured = "c" * 32
    assert shared.resolve(configured, "127.0.0.1", tmp_path / "secret") == (configured, "GRIDBOT_SECRET")
    assert shared.resolve(configured, "0.0.0.0", tmp_path / "secret")[0] == configured
    assert not (tmp_path / "secret").exists()
    with pytest.raises(shared.SecretError, match="too short"):
        shared.resolve("short", "127.0.0.1", tmp_path / "secret")
    with pytest.raises(shared.SecretError, match="may only contain"):
        shared.resolve("a" * 30 + " $HOME", "127.0.0.1", tmp_path / "secret")
    for host in ("0.0.0.0", "::", "192.168.1.10", "gridbot.example.org"):
        with pytest.raises(shared.SecretError, match="BIND_HOST"):
            shared.resolve(None, host, tmp_path / "secret")
    assert not (tmp_path / "secret").exists()
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert shared.resolve(None, host, tmp_path / "secret")[1] == str(tmp_path / "secret")


def test_matches_only_the_exact_secret() -> None:
    assert shared.matches(TEST_SECRET, TEST_SECRET)
    for provided in (None, "", TEST_SECRET[:-1], TEST_SECRET + "x", TEST_SECRET.upper(), "秘密" * 20):
        assert not shared.matches(provided, TEST_SECRET)


def _refused(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done
    assert "BIND_HOST=0.0.0.0" in done.stderr and "GRIDBOT_SECRET is not set" in done.stderr, done.stderr
    return done


def test_a_non_loopback_bind_without_a_configured_secret_refuses_to_start(tmp_path: Path) -> None:
    env, rasa_port, action_port = stack_env(tmp_path / "gridbot.db", {"BIND_HOST": "0.0.0.0", "GRIDBOT_SECRET": ""})
    # the supervisor (`make run`), offline and with Telegram: nothing is started
    for token in ("", "123:ABC"):
        started = time.monotonic()
        done = _refused([sys.executable, "-m", "cli.run"], {**env, "TELEGRAM_BOT_TOKEN": token})
        assert "started" not in done.stdout + done.stderr
        assert time.monotonic() - started < 60
    # each server started on its own
    _refused([sys.executable, "-m", "actions"], {**env, "PYTHONPATH": str(PROJECT_ROOT)})
    _refused([sys.executable, "-m", "bot"], {**env, "PYTHONPATH": str(PROJECT_ROOT), "TELEGRAM_BOT_TOKEN": "123:ABC"})
    _refused([str(PROJECT_ROOT / ".venv-rasa" / "bin" / "python"), "-m", "nlu.server", "run", "-i", "0.0.0.0",
              "-p", str(rasa_port)], {**env, "PYTHONPATH": str(PROJECT_ROOT)})


def test_the_bots_rasa_client_sends_the_secret_and_a_wrong_one_is_refused(stack: Stack) -> None:
    async def scenario() -> None:
        right = RasaClient(stack.rasa_url, TEST_SECRET)
        assert await right.intent_of("你好") == "greet"
        assert [r.text for r in await right.send("auth-client", "你好")]
        await right.aclose()
        wrong = RasaClient(stack.rasa_url, WRONG)
        assert await wrong.intent_of("你好") is None
        with pytest.raises(RasaRefused, match="GRIDBOT_SECRET"):
            await wrong.send("auth-client", "你好")
        await wrong.aclose()

    asyncio.run(scenario())


def test_the_secret_is_not_in_logs_or_command_lines(stack: Stack) -> None:
    started = dict(re.findall(r"started (\w+) \(pid (\d+)\)", stack.output()))
    for name in ("actions", "rasa"):
        assert TEST_SECRET.encode() not in Path(f"/proc/{started[name]}/cmdline").read_bytes(), name
    assert TEST_SECRET not in stack.output()
    logs = list(stack.log_dir.glob("*.log*"))
    assert logs and not [log.name for log in logs if TEST_SECRET in log.read_text(errors="replace")]
