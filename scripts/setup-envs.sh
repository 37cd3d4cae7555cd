#!/usr/bin/env bash
# Create or refresh the two Python 3.10 environments from the committed locks.
#
#   .venv-rasa  rasa, jieba, OpenCC            (locks/rasa.txt)
#   .venv-app   bot, core, actions, CLI, tests (locks/app.txt)
#
# Idempotent: an environment is rebuilt only when its lock changed (a stamp
# file records the lock's hash). Usage: scripts/setup-envs.sh [rasa|app|all]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
which_env=${1:-all}

find_python310() {
    if [[ -n "${PYTHON310:-}" && -x "${PYTHON310}" ]]; then echo "$PYTHON310"; return 0; fi
    if command -v python3.10 >/dev/null 2>&1; then
        local p; p=$(command -v python3.10)
        if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then echo "$p"; return 0; fi
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local root; root=$(pyenv root)
        local cand
        for cand in $(ls -d "$root"/versions/3.10.* 2>/dev/null | sort -V -r); do
            if [[ -x "$cand/bin/python3.10" ]]; then echo "$cand/bin/python3.10"; return 0; fi
        done
    fi
    for cand in /usr/bin/python3.10 /usr/local/bin/python3.10; do
        if [[ -x "$cand" ]]; then echo "$cand"; return 0; fi
    done
    return 1
}

PY=$(find_python310) || {
    cat >&2 <<'MSG'
error: gridbot needs Python 3.10 (Rasa 3.6 runs on nothing newer) and none was found.
Install it, then run this again. Any one of:
  pyenv install 3.10            (then it is found under $(pyenv root)/versions)
  apt-get install python3.10 python3.10-venv
or point PYTHON310 at a python3.10 executable.
MSG
    exit 1
}

hash_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

# 1. uv, pinned with hashes, in its own small environment.
TOOLS=.venv-tools
if [[ ! -x $TOOLS/bin/uv || "$(cat $TOOLS/.stamp 2>/dev/null)" != "$(hash_of locks/tools.txt)" ]]; then
    echo "setup: installing uv into $TOOLS" >&2
    rm -rf "$TOOLS"
    "$PY" -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r locks/tools.txt
    hash_of locks/tools.txt > $TOOLS/.stamp
fi
UV="$ROOT/$TOOLS/bin/uv"
export UV_PYTHON_DOWNLOADS=never

STAMP_VERSION=bytecode-1  # bump to rebuild every environment with the same locks

sync_env() {  # name lockfile [editable]
    local venv=".venv-$1" lock=$2 editable=${3:-}
    local stamp; stamp="$(hash_of "$lock" pyproject.toml) $STAMP_VERSION"
    if [[ -x $venv/bin/python && "$(cat "$venv/.stamp" 2>/dev/null)" == "$stamp" ]]; then
        return 0
    fi
    echo "setup: syncing $venv from $lock (first time takes a few minutes)" >&2
    [[ -x $venv/bin/python ]] || "$UV" venv --quiet --python "$PY" "$venv"
    # --compile-bytecode: installed packages come with their .pyc, as pip would leave them. Without
    # it every process would compile what it imports, on every start, wherever
    # PYTHONDONTWRITEBYTECODE is set (seconds for Rasa, SQLAlchemy, python-telegram-bot).
    "$UV" pip sync --quiet --python "$venv/bin/python" --require-hashes --compile-bytecode "$lock"
    if [[ -n $editable ]]; then
        "$UV" pip install --quiet --python "$venv/bin/python" --no-deps --no-build-isolation -e .
    fi
    echo "$stamp" > "$venv/.stamp"
}

# Our own packages too (a second or two; skips what is up to date).
compile_own() { .venv-app/bin/python -m compileall -q -j 0 core bot actions cli nlu web >/dev/null; }

# The command centre's browser tests (tests/app/test_centre_browser.py) drive Debian's chromium
# through chromium-driver, and its pages are Chinese: install them when missing (as root, with
# apt-get; elsewhere say what to install). GRIDBOT_NO_BROWSER=1 skips this.
ensure_browser() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    fc-list 2>/dev/null | grep -qiE 'wenquanyi|noto sans cjk|droid sans fallback' || missing+=(fonts-wqy-microhei)
    if [[ ${#missing[@]} -eq 0 || -n "${GRIDBOT_NO_BROWSER:-}" ]]; then return 0; fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${missing[*]} (the command centre's browser tests)" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
            apt-get update -q >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
        fi
    else
        echo "setup: warning: the browser tests need: apt-get install -y ${missing[*]}" >&2
    fi
}

# `make test-cluster` (scripts/test_cluster.py) puts Debian's nginx in front of its bot replicas,
# Rasa servers and action servers, started on its own configuration (the machine's stays alone).
ensure_nginx() {
    if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then return 0; fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing nginx (make test-cluster)" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null 2>&1; then
            apt-get update -q >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null
        fi
    else
        echo "setup: warning: make test-cluster needs: apt-get install -y nginx" >&2
    fi
}

case $which_env in
    rasa) sync_env rasa locks/rasa.txt ;;
    app) sync_env app locks/app.txt editable; compile_own; ensure_browser; ensure_nginx ;;
    all) sync_env app locks/app.txt editable; sync_env rasa locks/rasa.txt; compile_own; ensure_browser; ensure_nginx ;;
    tools) ;;
    *) echo "usage: $0 [rasa|app|all|tools]" >&2; exit 2 ;;
esac
