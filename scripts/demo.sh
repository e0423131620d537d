#!/usr/bin/env bash
# `make demo`: a local swarm on this machine, on embedded defaults, with no
# internet: a dev iroh relay + Nostr relay + HTTP origin and two Cashu test
# mints on a fake Lightning network (atoll-devnet), and three swarm nodes,
# A and B with wallets. Node A adds a file, B finds it through A's advert and
# fetches it through the relay, C fetches from A and B, a blob only the
# origin has is fetched and verified. Then A charges 1 sat/MB for a film
# and takes only mint 2's ecash; B holds mint 1's, swaps, pays and fetches.
# Everything stops on exit.
#
# Set ATOLL_DEMO_KEEP=1 to leave the swarm running until Ctrl-C.
set -euo pipefail
[ -n "${ATOLL_BIN_DIR:-}" ] || cd "$(dirname "${BASH_SOURCE[0]}")/.."

# `nix run .#demo` passes the built binaries in ATOLL_BIN_DIR.
if [ -n "${ATOLL_BIN_DIR:-}" ]; then
  BIN="$ATOLL_BIN_DIR"
else
  cargo build -q --locked --bin atoll --bin atoll-swarmd --bin atoll-walletd --bin atoll-devnet
  # Where cargo really put them: CARGO_TARGET_DIR, a cargo config, or ./target.
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4) || TARGET_DIR=""
  BIN="${TARGET_DIR:-$PWD/target}/debug"
fi
for b in atoll atoll-swarmd atoll-walletd atoll-devnet; do
  if [ ! -x "$BIN/$b" ]; then
    echo "demo: $BIN/$b is missing (set ATOLL_BIN_DIR to the directory of the built binaries)" >&2
    exit 1
  fi
done
DEMO="$(mktemp -d "${TMPDIR:-/tmp}/atoll-demo.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# Says why a part did not come up (the end of its log) and stops.
died() {
  echo "demo: $1 did not come up; the end of its log ($2):" >&2
  tail -n 25 "$2" >&2 || true
  exit 1
}

step "starting the local relays and origin (atoll-devnet)"
mkdir -p "$DEMO/origin"
head -c 3000000 /dev/urandom > "$DEMO/origin/poster.bin"
"$BIN/atoll-devnet" --origin-dir "$DEMO/origin" --mints 2 --melt-fee-sat 1 \
  > "$DEMO/devnet.env" 2> "$DEMO/devnet.log" &
DEVNET=$!
PIDS+=("$DEVNET")
for _ in $(seq 300); do
  grep -q LIGHTNING= "$DEMO/devnet.env" 2>/dev/null && break
  kill -0 "$DEVNET" 2>/dev/null || break
  sleep 0.1
done
grep -q LIGHTNING= "$DEMO/devnet.env" 2>/dev/null || died atoll-devnet "$DEMO/devnet.log"
# shellcheck disable=SC1091
source "$DEMO/devnet.env"
for v in IROH_RELAY NOSTR_RELAY ORIGIN LIGHTNING MINT_1 MINT_2; do
  [ -n "${!v:-}" ] || died "atoll-devnet (no $v in its output)" "$DEMO/devnet.log"
done
cat "$DEMO/devnet.env"

# Wallets: A takes mint 2; B trusts both (and will hold mint 1's ecash).
wallet() { local n=$1; shift; "$BIN/atoll" wallet --wallet-socket "$DEMO/$n-wallet/walletd.sock" "$@"; }
for n in a b; do
  mkdir -p "$DEMO/$n-wallet"
  if [ "$n" = a ]; then TRUST="\"$MINT_2\""; else TRUST="\"$MINT_1\", \"$MINT_2\""; fi
  cat > "$DEMO/$n-wallet/walletd.toml" <<TOML
[wallet]
trusted_mints = [$TRUST]
[api]
socket = "$DEMO/$n-wallet/walletd.sock"
TOML
  "$BIN/atoll-walletd" --config "$DEMO/$n-wallet/walletd.toml" --state-dir "$DEMO/$n-wallet/state" \
    2> "$DEMO/$n-wallet.log" &
  PIDS+=($!)
done
for n in a b; do
  for _ in $(seq 100); do wallet "$n" balance >/dev/null 2>&1 && break; sleep 0.1; done
  wallet "$n" balance >/dev/null 2>&1 || died "wallet $n (atoll-walletd)" "$DEMO/$n-wallet.log"
done

for n in a b c; do
  case $n in
    a) PAYMENT="enabled = true
price_sat_per_mb = 1
accepted_mints = [\"$MINT_2\"]
wallet_socket = \"$DEMO/a-wallet/walletd.sock\"" ;;
    b) PAYMENT="wallet_socket = \"$DEMO/b-wallet/walletd.sock\"
max_price_sat_per_mb = 2
max_fee_sat = 5" ;;
    *) PAYMENT="" ;;
  esac
  cat > "$DEMO/$n.toml" <<TOML
[node]
bind = "127.0.0.1:0"
relays = ["$IROH_RELAY"]
[nostr]
relays = ["$NOSTR_RELAY"]
lookup_timeout_secs = 2
[payment]
$PAYMENT
TOML
  "$BIN/atoll-swarmd" --config "$DEMO/$n.toml" --state-dir "$DEMO/$n" 2> "$DEMO/$n.log" &
  PIDS+=($!)
done
atoll() { local n=$1; shift; "$BIN/atoll" --socket "$DEMO/$n/run/swarmd.sock" "$@"; }
for n in a b c; do
  for _ in $(seq 100); do atoll "$n" status >/dev/null 2>&1 && break; sleep 0.1; done
  atoll "$n" status >/dev/null 2>&1 || died "node $n (atoll-swarmd)" "$DEMO/$n.log"
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

step "a ticket for stock iroh tools (sendme receive TICKET writes film.bin)"
atoll a blob ticket "$ID" --name film.bin

step "nobody seeds the poster: C gets it from the origin, verified"
POSTER=$("$BIN/atoll" hash "$DEMO/origin/poster.bin" | cut -d' ' -f1)
atoll c blob get "$POSTER" -o "$DEMO/poster.bin" --origin "$ORIGIN/poster.bin"

step "what C holds"
atoll c blob ls

step "B's wallet gets 100 sat at mint 1 (an invoice paid from outside, claimed)"
BOLT11=$(wallet b invoice --mint "$MINT_1" 100 2> "$DEMO/quote")
QUOTE=$(awk '{print $NF}' "$DEMO/quote")
curl -sS -f -X POST -H 'content-type: application/json' \
  -d "{\"bolt11\": \"$BOLT11\"}" "$LIGHTNING/pay" > /dev/null
for _ in $(seq 50); do
  [ "$(wallet b claim --mint "$MINT_1" "$QUOTE")" != "minted 0 sat" ] && break
  sleep 0.2
done
wallet b balance

step "A sells a 20 MB film at 1 sat/MB, for mint 2's ecash only"
head -c 20000000 /dev/urandom > "$DEMO/paid-film.bin"
atoll a blob add "$DEMO/paid-film.bin"
PAID=$("$BIN/atoll" hash "$DEMO/paid-film.bin" | cut -d' ' -f1)
atoll a blob charge "$PAID"

step "B buys it: swaps mint 1 -> mint 2 through Lightning, pays A, fetches"
atoll b blob get "$PAID" -o "$DEMO/b-paid.bin" --ticket "$(atoll a blob ticket "$PAID")"
cmp "$DEMO/paid-film.bin" "$DEMO/b-paid.bin" && echo "B's copy is identical"
step "what it cost B, and what A earned"
wallet b history
atoll b blob payments
wallet a balance
atoll a blob payments

if [ "${ATOLL_DEMO_KEEP:-}" = 1 ]; then
  step "swarm running in $DEMO; try: $BIN/atoll --socket $DEMO/a/run/swarmd.sock status (Ctrl-C stops it)"
  wait
fi
step "demo finished"
