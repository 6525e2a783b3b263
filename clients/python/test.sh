#!/usr/bin/env bash
# The Python client against a real service: sets up a venv (in target/, reused while requirements.txt is
# unchanged), installs the requirements, generates the stubs, starts `doorstep serve --demo` on throwaway
# SQLite files (one open, one with --auth required) and runs file_ticket.py as an integrator would.
#
#   clients/python/test.sh            # uses target/debug/doorstep, building it if missing
#   DOORSTEP_BIN=path/to/doorstep clients/python/test.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${DOORSTEP_BIN:-$target/debug/doorstep}
python=${PYTHON:-python3}
# The client reads a token from the environment; these checks say which token they send.
unset DOORSTEP_TOKEN

if [[ ! -x $bin ]]; then
  (cd "$root" && cargo build -q -p doorstep-cli)
fi

venv=$target/python-client/venv
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
py=$venv/bin/python
"$py" "$here/generate.py" >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME [serve flags...]: starts a service on its own SQLite file; sets $addr and $db.
start() {
  local dir=$work/$1
  shift
  mkdir -p "$dir"
  db=sqlite://$dir/doorstep.db
  "$bin" serve --listen 127.0.0.1:0 --database-url "$db" --demo "$@" >"$dir/stdout" 2>"$dir/stderr" &
  pids+=($!)
  addr=
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/^doorstep listening on //p' "$dir/stdout")
    [[ -n $addr ]] && return 0
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      cat "$dir/stderr" >&2
      echo "doorstep serve exited before listening" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "doorstep serve did not listen within 30 s" >&2
  exit 1
}

passed=0
failed=0
# expect NAME CONDITION: CONDITION is the inside of a [[ ]] over $rc, $out and $err of the last run.
expect() {
  if eval "[[ $2 ]]"; then
    passed=$((passed + 1))
    echo "ok      $1"
  else
    failed=$((failed + 1))
    echo "FAILED  $1 (exit $rc)"
    printf '  stdout: %s\n  stderr: %s\n' "$out" "$err"
  fi
}

# file [file_ticket.py args...]: runs the client; sets $out, $err and $rc.
file() {
  rc=0
  "$py" "$here/file_ticket.py" "$@" >"$work/out" 2>"$work/err" || rc=$?
  out=$(cat "$work/out")
  err=$(cat "$work/err")
}

# An open service (loopback, no authentication).
start open
file --server "$addr" --external-ref PY-T1 --caller-name 张女士 --caller-phone 13800000003
first_id=$(sed -n 's/^ticket \([^ ]*\) .*/\1/p' <<<"$out")
expect "files a ticket and prints its id" '$rc == 0 && -n $first_id && $out == *"created=true"*'

file --server "$addr" --external-ref PY-T1 --caller-name 张女士 --caller-phone 13800000003
expect "the same work order again answers the same ticket with created=false" '$rc == 0 && $out == "ticket $first_id created=false"*'

file --server "http://$addr" --external-ref PY-T1 --caller-name 张女士 --caller-phone 13800000003
expect "--server also takes http://HOST:PORT" '$rc == 0 && $out == "ticket $first_id created=false"*'

file --server "http://$addr" --external-ref PY-T1 --caller-name 张女士 --caller-phone 13800000003 --content "另一件事"
expect "the same work order for another request is ALREADY_EXISTS naming the ticket, exit 1" '$rc == 1 && -z $out && $err == *ALREADY_EXISTS*"$first_id"*'

file --server "$addr" --external-ref PY-T2 --node lixia/nowhere
expect "a bad field is INVALID_ARGUMENT naming the field and its reason code, exit 1" '$rc == 1 && -z $out && $err == *"INVALID_ARGUMENT: "*node*"lixia/nowhere"* && $err == *"field node ["*'

file --server 127.0.0.1:1 --retries 0 --timeout 5
expect "no service: UNAVAILABLE, exit 1" '$rc == 1 && $err == *UNAVAILABLE*'

# A service that requires tokens.
start auth --auth required
if ! token=$("$bin" token create --role intake --scope lixia/jiefanglu --expires 1d --database-url "$db" 2>"$work/token.stderr"); then
  cat "$work/token.stderr" >&2
  exit 1
fi

file --server "$addr" --external-ref PY-A1
expect "no token: UNAUTHENTICATED, exit 1" '$rc == 1 && -z $out && $err == *UNAUTHENTICATED*'

file --server "$addr" --external-ref PY-A1 --token "dst_$(printf '0%.0s' {1..64})"
expect "a bad token: UNAUTHENTICATED, exit 1" '$rc == 1 && -z $out && $err == *UNAUTHENTICATED*'

DOORSTEP_TOKEN=$token file --server "$addr" --external-ref PY-A1
expect "the token from DOORSTEP_TOKEN files a ticket" '$rc == 0 && $out == *"created=true"*'

file --server "$addr" --external-ref PY-A1 --token "$token"
expect "the token from --token finds it again" '$rc == 0 && $out == *"created=false"*'

echo
echo "python-client: $passed passed, $failed failed"
[[ $failed == 0 ]]
