"""Start the Rasa server with every route behind the shared secret: `python -m nlu.server run …`
(the arguments of `rasa run`; `cli/run.py` starts Rasa this way).

- Rasa's HTTP API gets `--jwt-secret` (HS256): every route but `/` and `/version` then needs an
  `Authorization: Bearer` token signed with the secret (`core.secret.rasa_jwt`). The secret is
  given to Rasa inside this process, so it does not show in the process list as an
  `--auth-token`/`--jwt-secret` command-line argument would.
- The secret is also put into this process's environment as GRIDBOT_SECRET, for the
  `${GRIDBOT_SECRET}` in credentials.yml (our input channel, `nlu/channel.py`) and in
  endpoints.yml (the header Rasa sends to the action server).

The secret is GRIDBOT_SECRET, or the generated one in var/secret (`core/secret.py`); with a
non-loopback `-i` and no GRIDBOT_SECRET this refuses to start (exit status 2), before Rasa is
even imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from core import secret as shared

# The persistent tracker store of endpoints.yml: an SQLite file under var/ unless configured.
TRACKER_DEFAULTS = {
    "RASA_TRACKER_DIALECT": "sqlite",
    "RASA_TRACKER_DB": str(Path(__file__).resolve().parent.parent / "var" / "rasa-tracker.db"),
    "RASA_TRACKER_HOST": "",
}
OWN_OPTIONS = ("-t", "--auth-token", "--jwt-secret", "--jwt-method", "--jwt-private-key")
RASA_DEFAULT_INTERFACE = "0.0.0.0"  # what `rasa run` binds to without -i


def bind_host(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg in ("-i", "--interface") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--interface="):
            return arg.split("=", 1)[1]
    return RASA_DEFAULT_INTERFACE


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "run":
        print("usage: python -m nlu.server run [rasa run options]", file=sys.stderr)
        return 2
    own = [a for a in args if a.split("=", 1)[0] in OWN_OPTIONS]
    if own:
        print(f"rasa: do not pass {', '.join(own)}: the API is secured with GRIDBOT_SECRET",
              file=sys.stderr)
        return 2
    try:
        secret, origin = shared.resolve(os.environ.get(shared.ENV_NAME, "").strip() or None,
                                        bind_host(args))
    except shared.SecretError as exc:
        print(f"rasa: {exc}", file=sys.stderr)
        return 2
    os.environ[shared.ENV_NAME] = secret
    for name, default in TRACKER_DEFAULTS.items():  # endpoints.yml's tracker_store
        os.environ.setdefault(name, default)
    # Rasa reports usage and errors (tracebacks with local values) to Rasa's servers unless told
    # not to; residents' messages must not leave the machine.
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    print(f"rasa: HTTP API and the gridbot channel need the shared secret (from {origin})",
          file=sys.stderr, flush=True)
    # "--jwt-secret=…" in one word: a secret that starts with "-" (token_urlsafe makes one in 64)
    # would otherwise be read by argparse as an option ("expected one argument").
    sys.argv = ["rasa", *args, f"--jwt-secret={secret}", "--jwt-method", "HS256"]
    from rasa.__main__ import main as rasa_main  # noqa: PLC0415 - slow; only once allowed to run

    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
