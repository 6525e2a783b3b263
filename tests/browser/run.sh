#!/usr/bin/env bash
# The console in a real browser: headless Chromium (Debian's package, installed when missing) driven by
# playwright-core (pinned in package.json, installed under target/browser/tools), against real
# `doorstep serve --demo` processes on throwaway SQLite files; tickets are filed over gRPC by the Python
# client (clients/python, its venv in target/ as clients/python/test.sh makes it). Screenshots and
# the measured figures go to target/browser/.
#
#   tests/browser/run.sh              # uses target/debug/doorstep, building it if missing
#   DOORSTEP_BIN=path/to/doorstep tests/browser/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${DOORSTEP_BIN:-$target/debug/doorstep}
out=$target/browser

if [[ ! -x /usr/bin/chromium ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
# Chinese labels in the screenshots need a CJK font (the page itself asks for none from the network).
if [[ -z $(fc-list :lang=zh 2>/dev/null) ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-microhei
fi

tools=$out/tools
if ! cmp -s "$here/package-lock.json" "$tools/package-lock.json" 2>/dev/null; then
  rm -rf "$tools"
  mkdir -p "$tools"
  cp "$here/package.json" "$here/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --silent --no-audit --no-fund)
fi

if [[ ! -x $bin ]]; then
  (cd "$root" && cargo build -q -p doorstep-cli)
fi

# The Python client files the tickets over gRPC.
pyclient=$root/clients/python
venv=$target/python-client/venv
if ! cmp -s "$pyclient/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$pyclient/requirements.txt"
  cp "$pyclient/requirements.txt" "$venv/requirements.txt"
fi
"$venv/bin/python" "$pyclient/generate.py" >/dev/null

mkdir -p "$out"
export DOORSTEP_BIN=$bin DOORSTEP_PYTHON=$venv/bin/python DOORSTEP_FILE_TICKET=$pyclient/file_ticket.py
export DOORSTEP_BROWSER_OUT=$out NODE_PATH=$tools/node_modules
node "$here/console.test.mjs"
