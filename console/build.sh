#!/usr/bin/env bash
# Rebuilds the console from its sources (the generated client from proto/, the type check, the bundle)
# with the pinned tools of package-lock.json (installed in console/node_modules, ignored by git).
#
#   console/build.sh           # rebuild src/gen/ and dist/
#   console/build.sh --check   # and fail when they differ from what is committed (CI)
set -euo pipefail
cd "$(dirname "$0")"

if ! cmp -s package-lock.json node_modules/.doorstep-package-lock.json 2>/dev/null; then
  npm ci --silent --no-audit --no-fund
  cp package-lock.json node_modules/.doorstep-package-lock.json
fi
node_modules/.bin/buf generate --template buf.gen.yaml
node_modules/.bin/tsc --noEmit -p .
node build.mjs
printf 'console.js: %s bytes, %s gzipped\n' "$(wc -c <dist/console.js)" "$(gzip -9 -c dist/console.js | wc -c)"

if [[ ${1:-} == --check ]]; then
  changed=$(git status --porcelain -- src/gen dist)
  if [[ -n $changed ]]; then
    echo "console: the committed build differs from the sources (run console/build.sh and commit):" >&2
    echo "$changed" >&2
    git diff --stat -- src/gen dist >&2
    exit 1
  fi
fi
