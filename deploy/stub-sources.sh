#!/bin/sh
# Placeholder sources for every workspace crate, so that deploy/Dockerfile can compile the dependencies
# in a layer of their own: that layer depends only on the manifests, Cargo.lock and proto/, so a change
# to the sources rebuilds the doorstep crates alone. Cargo refuses a manifest whose inferred targets
# (e.g. an [[example]] named without a path) have no file, so each declared example, test and bench
# gets an empty `main` too. Run from the repository root, after the manifests are copied.
set -eu
for manifest in crates/*/Cargo.toml; do
  crate=${manifest%/Cargo.toml}
  mkdir -p "$crate/src"
  if [ "$crate" = crates/doorstep-cli ]; then
    echo 'fn main() {}' > "$crate/src/main.rs"
  else
    : > "$crate/src/lib.rs"
  fi
  awk -v dir="$crate" '
    function flush() {
      if (kind != "") print dir "/" (path != "" ? path : kind "/" name ".rs")
      kind = ""; name = ""; path = ""
    }
    /^\[/ { flush() }
    /^\[\[example\]\]/ { kind = "examples" }
    /^\[\[test\]\]/ { kind = "tests" }
    /^\[\[bench\]\]/ { kind = "benches" }
    kind != "" && /^name *=/ { name = $0; sub(/^name *= *"/, "", name); sub(/".*/, "", name) }
    kind != "" && /^path *=/ { path = $0; sub(/^path *= *"/, "", path); sub(/".*/, "", path) }
    END { flush() }
  ' "$manifest" | while read -r target; do
    mkdir -p "$(dirname "$target")"
    echo 'fn main() {}' > "$target"
  done
done
