"""The one shared secret that authenticates every process boundary (bot → Rasa, Rasa → actions).

Standard library only, like `core/protocol.py`, so the Rasa environment (our input channel and
`nlu/server.py`) uses the same code as the application environment.

Where it comes from: GRIDBOT_SECRET in the environment (or `.env`), or, when that is unset,
a random one generated on first use and kept in `var/secret` (mode 0600, `var/` 0700). A
server bound to an address other than loopback refuses the generated one: GRIDBOT_SECRET
must be set (see `resolve`). The supervisor (`cli/run.py`) resolves it once and hands it to
its children in their environment, so all three processes share it.

How it is checked:
- Rasa's input channel (`nlu/channel.py`) and the action server (`actions/__main__.py`)
  compare the SECRET_HEADER of each request with the secret in constant time (`matches`).
- Rasa's HTTP API runs with `--jwt-secret` (`nlu/server.py`): clients send a short-lived
  HS256 token signed with the secret (`rasa_jwt`), so the secret itself is not sent there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import stat
import time
from pathlib import Path

ENV_NAME = "GRIDBOT_SECRET"
SECRET_HEADER = "X-Gridbot-Secret"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "var" / "secret"
MIN_LENGTH = 24
# Characters that survive an HTTP header, a YAML `${...}` substitution and a shell unquoted.
_ALPHABET = re.compile(r"[A-Za-z0-9._~+/=-]+")
JWT_SECONDS = 600  # lifetime of a token for Rasa's HTTP API
JWT_USER = {"username": "gridbot", "role": "admin"}  # Rasa lets the admin role use every route
GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class SecretError(Exception):
    """The secret is missing where it must be configured, or unusable; the message says why."""


def check(value: str, origin: str = ENV_NAME) -> str:
    """`value` if it can be the shared secret, else SecretError naming `origin`."""
    if len(value) < MIN_LENGTH:
        raise SecretError(f"{origin} is too short ({len(value)} characters, at least {MIN_LENGTH}); "
                          f"make one with {GENERATE_HINT}")
    if not _ALPHABET.fullmatch(value):
        raise SecretError(f"{origin} may only contain letters, digits and . _ ~ + / = -; "
                          f"make one with {GENERATE_HINT}")
    return value


def is_loopback(host: str) -> bool:
    """Whether a server bound to `host` is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a wildcard such as 0.0.0.0: assume others can reach it


def resolve(configured: str | None, bind_host: str, path: Path = DEFAULT_PATH) -> tuple[str, str]:
    """(secret, where it came from): the configured one, else the one in `path` (generated on
    first use). SecretError when BIND_HOST is not a loopback address and nothing is configured:
    a secret generated on one machine cannot be shared with the others, and a server open to the
    network must not run on one that nobody chose."""
    if configured:
        return check(configured), ENV_NAME
    if not is_loopback(bind_host):
        raise SecretError(
            f"BIND_HOST={bind_host} is not a loopback address, so other machines can reach these "
            f"servers, but GRIDBOT_SECRET is not set. Refusing to start: set GRIDBOT_SECRET (the "
            f"same value for every process, at least {MIN_LENGTH} characters, e.g. from "
            f"{GENERATE_HINT}) or bind to 127.0.0.1.")
    return load_or_create(path), str(path)


def load_or_create(path: Path = DEFAULT_PATH) -> str:
    """The secret kept in `path`; a new random one written there (0600, directory 0700) if none."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    # Written to a private temporary file, then linked into place: two processes starting at
    # once both end up with the one that won the link, never with a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won: read its secret
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):  # readable by others: make it private again
        os.chmod(path, 0o600)
    return check(path.read_text(encoding="ascii").strip(), origin=str(path))


def matches(provided: str | None, secret: str) -> bool:
    """Whether a request's header value is the secret; constant time in the value."""
    if not provided or not secret:
        return False
    return hmac.compare_digest(provided.encode("utf-8", "replace"), secret.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rasa_jwt(secret: str, seconds: int = JWT_SECONDS, now: float | None = None) -> str:
    """A token for Rasa's HTTP API (`Authorization: Bearer …`): HS256 over the secret, the admin
    role Rasa's routes ask for, expiring after `seconds`."""
    issued = int(time.time() if now is None else now)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps({"user": JWT_USER, "iat": issued, "exp": issued + seconds},
                              separators=(",", ":")).encode())
    signature = hmac.new(secret.encode("utf-8"), f"{header}.{payload}".encode("ascii"), hashlib.sha256)
    return f"{header}.{payload}.{_b64(signature.digest())}"


class RasaToken:
    """`Authorization` headers for Rasa's HTTP API, a fresh token well before the old one expires."""

    def __init__(self, secret: str, seconds: int = JWT_SECONDS) -> None:
        self._secret = secret
        self._seconds = seconds
        self._token = ""
        self._renew_at = 0.0

    def headers(self) -> dict[str, str]:
        now = time.time()
        if now >= self._renew_at:
            self._token = rasa_jwt(self._secret, self._seconds, now)
            self._renew_at = now + self._seconds / 2
        return {"Authorization": f"Bearer {self._token}"}
