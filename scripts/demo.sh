#!/usr/bin/env bash
# `make demo`: a local swarm on this machine, on embedded defaults, with no
# internet: a dev iroh relay + Nostr relay + HTTP origin (atoll-devnet), and
# three swarm nodes. Node A adds a file, B finds it through A's advert and
# fetches it through the relay, C fetches from A and B, a blob only the
# origin has is fetched and verified. Everything stops on exit.
#
# Set ATOLL_DEMO_KEEP=1 to leave the swarm running until Ctrl-C.
set -euo pipefail
[ -n "${ATOLL_BIN_DIR:-}" ] || cd "$(dirname "${BASH_SOURCE[0]}")/.."

# `nix run .#demo` passes the built binaries in ATOLL_BIN_DIR.
if [ -n "${ATOLL_BIN_DIR:-}" ]; then
  BIN="$ATOLL_BIN_DIR"
else
  cargo build -q --locked --bin atoll --bin atoll-swarmd --bin atoll-devnet
  BIN="$PWD/target/debug"
fi
DEMO="$(mktemp -d "${TMPDIR:-/tmp}/atoll-demo.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "starting the local relays and origin (atoll-devnet)"
mkdir -p "$DEMO/origin"
head -c 3000000 /dev/urandom > "$DEMO/origin/poster.bin"
"$BIN/atoll-devnet" --origin-dir "$DEMO/origin" > "$DEMO/devnet.env" 2> "$DEMO/devnet.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q ORIGIN= "$DEMO/devnet.env" 2>/dev/null && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$DEMO/devnet.env"
cat "$DEMO/devnet.env"

for n in a b c; do
  cat > "$DEMO/$n.toml" <<TOML
[node]
bind = "127.0.0.1:0"
relays = ["$IROH_RELAY"]
[nostr]
relays = ["$NOSTR_RELAY"]
lookup_timeout_secs = 2
TOML
  "$BIN/atoll-swarmd" --config "$DEMO/$n.toml" --state-dir "$DEMO/$n" 2> "$DEMO/$n.log" &
  PIDS+=($!)
done
atoll() { local n=$1; shift; "$BIN/atoll" --socket "$DEMO/$n/run/swarmd.sock" "$@"; }
for n in a b c; do
  for _ in $(seq 100); do atoll "$n" status >/dev/null 2>&1 && break; sleep 0.1; done
done

step "node A"
atoll a status

step "A adds a 20 MB file"
head -c 20000000 /dev/urandom > "$DEMO/film.bin"
atoll a blob add "$DEMO/film.bin"
ID=$("$BIN/atoll" hash "$DEMO/film.bin" | cut -d' ' -f1)

step "B fetches $ID (finds A through its Nostr advert)"
for _ in $(seq 20); do atoll b blob get "$ID" -o "$DEMO/b.bin" && break; sleep 0.5; done
cmp "$DEMO/film.bin" "$DEMO/b.bin" && echo "B's copy is identical"

step "C fetches it too (from A and B)"
atoll c blob get "$ID" -o "$DEMO/c.bin"

step "nobody seeds the poster: C gets it from the origin, verified"
POSTER=$("$BIN/atoll" hash "$DEMO/origin/poster.bin" | cut -d' ' -f1)
atoll c blob get "$POSTER" -o "$DEMO/poster.bin" --origin "$ORIGIN/poster.bin"

step "what C holds"
atoll c blob ls

if [ "${ATOLL_DEMO_KEEP:-}" = 1 ]; then
  step "swarm running in $DEMO; try: $BIN/atoll --socket $DEMO/a/run/swarmd.sock status (Ctrl-C stops it)"
  wait
fi
step "demo finished"
