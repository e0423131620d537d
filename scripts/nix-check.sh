#!/usr/bin/env bash
# Check every Nix file of the repository: syntax (nix-instantiate --parse),
# formatting (alejandra --check), unused code (deadnix --fail) and lints
# (statix check). Files: those git tracks plus new ones it does not ignore;
# outside a git checkout, every *.nix but target/ and result*.
#
# Missing tools are installed once and then reused: nix-bin from apt;
# deadnix and alejandra, at the pinned versions, from crates.io into
# $CARGO_HOME/bin. crates.io's `alejandra` is the library only (its CLI crate
# is not published), so this script builds a small CLI around it (below).
# statix is not on crates.io at all (the crate of that name there is an
# unrelated HTTP server: never `cargo install statix`); it is run when a
# statix 0.x is on PATH (e.g. in `nix develop`), else reported as SKIPPED.
# NIX_CHECK_REQUIRE_STATIX=1 makes a missing statix a failure.
#
# Usage: scripts/nix-check.sh [FILE.nix...]   Exit status 0 only if all pass.
set -euo pipefail

DEADNIX_VERSION=1.3.1
# Changing it means regenerating the lock in install_alejandra.
ALEJANDRA_VERSION=3.1.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export PATH="$CARGO_HOME/bin:$PATH"

have() { command -v "$1" >/dev/null 2>&1; }
log() { printf '==> %s\n' "$*"; }

installed=()
install_note() { installed+=("$1 in $2 s"); }

install_nix() {
  have nix-instantiate && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "nix-instantiate is missing: install nix-bin (apt-get install nix-bin) as root" >&2
    return 1
  fi
  log "installing nix-bin (apt)"
  local start=$SECONDS
  apt-get install -y -qq nix-bin >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq nix-bin >/dev/null; }
  install_note nix-bin $((SECONDS - start))
}

install_deadnix() {
  have deadnix && return
  log "installing deadnix $DEADNIX_VERSION (cargo install --locked)"
  local start=$SECONDS
  cargo install --quiet --locked "deadnix@$DEADNIX_VERSION"
  install_note "deadnix $DEADNIX_VERSION" $((SECONDS - start))
}

# `alejandra [--check] PATH...` on the crates.io library alejandra 3.1.0,
# with the upstream CLI's exit codes; the lock pins every dependency.
install_alejandra() {
  have alejandra && return
  log "installing alejandra $ALEJANDRA_VERSION (crates.io library + CLI, cargo install --locked)"
  local start=$SECONDS dir
  dir=$(mktemp -d)
  mkdir -p "$dir/src"
  cat >"$dir/Cargo.toml" <<EOF
[package]
name = "alejandra-cli-atoll"
version = "$ALEJANDRA_VERSION"
edition = "2021"
publish = false

[[bin]]
name = "alejandra"
path = "src/main.rs"

[dependencies]
alejandra = "=$ALEJANDRA_VERSION"

[workspace]
EOF
  cat >"$dir/src/main.rs" <<'EOF'
//! `alejandra [--check] PATH...`: the formatter from the crates.io `alejandra`
//! library with the CLI's exit codes: 0 formatted, 1 error, 2 (--check) a file
//! needs formatting. Directories are searched for *.nix (not .git, target, result).
use alejandra::format::{in_fs, Status};
use std::path::Path;

fn collect(path: &Path, files: &mut Vec<String>) {
    if !path.is_dir() {
        files.push(path.display().to_string());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else { return };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if p.is_dir() && !name.starts_with('.') && name != "target" && !name.starts_with("result") {
            collect(&p, files);
        } else if p.is_file() && name.ends_with(".nix") {
            files.push(p.display().to_string());
        }
    }
}

fn main() {
    let (mut check, mut files) = (false, Vec::new());
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" | "-c" => check = true,
            "--quiet" | "-q" | "-qq" => {}
            "--version" | "-v" => return println!("alejandra {} (crates.io library)", alejandra::version::VERSION),
            _ => collect(Path::new(&arg), &mut files),
        }
    }
    let (mut changed, mut failed) = (0, 0);
    for file in files {
        match in_fs(file.clone(), !check) {
            Status::Changed(false) => {}
            Status::Changed(true) => {
                changed += 1;
                println!("{} {file}", if check { "Requires formatting:" } else { "Formatted:" });
            }
            Status::Error(e) => {
                failed += 1;
                eprintln!("Failed! {e} at file: {file}");
            }
        }
    }
    std::process::exit(if failed > 0 { 1 } else if check && changed > 0 { 2 } else { 0 });
}
EOF
  cat >"$dir/Cargo.lock" <<'EOF'
version = 4
package = [
  { name = "alejandra", version = "3.1.0", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "2bc05c61ca4cc9ccd139efa86d1e8414e2e0f2dc6584edc3de33f04eebfa1dee", dependencies = ["mimalloc", "rnix", "rowan"] },
  { name = "alejandra-cli-atoll", version = "3.1.0", dependencies = ["alejandra"] },
  { name = "autocfg", version = "1.5.1", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "f2032f911046de80f0a198e0901378627c33f59ea0ac00e363d481118bd70a53" },
  { name = "cbitset", version = "0.2.0", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "29b6ad25ae296159fb0da12b970b2fe179b234584d7cd294c891e2bbb284466b", dependencies = ["num-traits"] },
  { name = "cc", version = "1.11.3", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "02f0e023adb368345ce0ca6cdfc0f24a06554468d0e8503e14a0841de79bfa69", dependencies = ["find-msvc-tools", "shlex"] },
  { name = "countme", version = "2.0.4", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "328b822bdcba4d4e402be8d9adb6eebf269f969f8eadef977a553ff3c4fbcb58" },
  { name = "find-msvc-tools", version = "0.1.15", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "1c66915cc5391097de7a2b0b972e8505aa33c0df401fd3a6811dbdb32881ba48" },
  { name = "hashbrown", version = "0.9.1", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "d7afe4a420e3fe79967a00898cc1f4db7c8a49a9333a29f8a4bd76a253d5cd04" },
  { name = "libmimalloc-sys", version = "0.1.49", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "6a45a52f43e1c16f667ccfe4dd8c85b7f7c204fd5e3bf46c5b0db9a5c3c0b8e9", dependencies = ["cc"] },
  { name = "memoffset", version = "0.6.5", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "5aa361d4faea93603064a027415f07bd8e1d5c88c9fbf68bf56a285428fd79ce", dependencies = ["autocfg"] },
  { name = "mimalloc", version = "0.1.52", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "2d4139bb28d14ad1facf21d5eb8825051b326e172d216b39f6d31df53cc97862", dependencies = ["libmimalloc-sys"] },
  { name = "num-traits", version = "0.2.19", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "071dfc062690e90b734c0b2273ce72ad0ffa95f0c74596bc250dcfd960262841", dependencies = ["autocfg"] },
  { name = "proc-macro2", version = "1.0.107", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "985e7ec9bb745e6ce6535b544d84d6cd6f7ad8bd711c398938ae983b91a766d9", dependencies = ["unicode-ident"] },
  { name = "quote", version = "1.0.47", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "1fbf4db142a473a8d80c26bbf18454ed458bf8d26c8219c331daecfdbd079001", dependencies = ["proc-macro2"] },
  { name = "rnix", version = "0.10.2", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "8024a523e8836f1a5d051203dc00d833357fee94e351b51348dfaeca5364daa9", dependencies = ["cbitset", "rowan", "smol_str"] },
  { name = "rowan", version = "0.12.6", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "a1b36e449f3702f3b0c821411db1cbdf30fb451726a9456dce5dabcd44420043", dependencies = ["countme", "hashbrown", "memoffset", "rustc-hash", "text-size"] },
  { name = "rustc-hash", version = "1.1.0", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "08d43f7aa6b08d49f382cde6a7982047c3426db949b1424bc4b7ec9ae12c6ce2" },
  { name = "serde", version = "1.0.229", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "4148590afebada386688f18773da617792bf2ef03ffc1e4cbd2b1d45b023e0ba", dependencies = ["serde_core"] },
  { name = "serde_core", version = "1.0.229", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "67dca2c9c51e58a4791a4b1ed58308b39c64224d349a935ab5039aa360942a48", dependencies = ["serde_derive"] },
  { name = "serde_derive", version = "1.0.229", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "e7a5d71263a5a7d47b41f6b3f06ba276f10cc18b0931f1799f710578e2309348", dependencies = ["proc-macro2", "quote", "syn"] },
  { name = "shlex", version = "2.0.1", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "f8fadd59c855ef2080decdef8ff161eb6661b86933c9d82e5ba29dc602a55aba" },
  { name = "smol_str", version = "0.1.24", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "fad6c857cbab2627dcf01ec85a623ca4e7dcb5691cbaa3d7fb7653671f0d09c9", dependencies = ["serde"] },
  { name = "syn", version = "3.0.10", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "4ae9ccbea3a7b0b09443036490c8f34a8b1b760fd345e5c0dae0aac718faea79", dependencies = ["proc-macro2", "quote", "unicode-ident"] },
  { name = "text-size", version = "1.1.1", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "f18aa187839b2bdb1ad2fa35ead8c4c2976b64e4363c386d45ac0f7ee85c9233" },
  { name = "unicode-ident", version = "1.0.27", source = "registry+https://github.com/rust-lang/crates.io-index", checksum = "a2c754d6c33795a1c324727428e5a7dedb5b06195f9890bdbcba760d3e246563" },
]
EOF
  cargo install --quiet --locked --path "$dir"
  rm -rf "$dir"
  install_note "alejandra $ALEJANDRA_VERSION" $((SECONDS - start))
}

# statix 0.x is the Nix linter; anything else named statix is not.
statix_ok() {
  have statix && timeout 10 statix --version 2>/dev/null | grep -Eq '^statix 0\.'
}

list_files() {
  if [ "$#" -gt 0 ]; then
    printf '%s\n' "$@"
  elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- '*.nix' ':(exclude)target/'
  else
    find . -name '*.nix' -not -path './target/*' -not -path './.git/*' -not -path './result*' | sed 's|^\./||' | sort
  fi
}

mapfile -t files < <(list_files "$@")
if [ "${#files[@]}" -eq 0 ]; then
  echo "nix-check: no .nix files found" >&2
  exit 1
fi

install_nix
install_deadnix
install_alejandra
for i in "${installed[@]}"; do log "installed $i"; done

results=()
failed=0
record() { # name status detail
  results+=("$(printf '%-10s %-8s %s' "$1" "$2" "$3")")
  [ "$2" = FAIL ] && failed=1
  return 0
}

log "${#files[@]} files: ${files[*]}"

log "syntax: nix-instantiate --parse ($(nix-instantiate --version))"
bad=()
for f in "${files[@]}"; do
  nix-instantiate --parse "$f" >/dev/null || bad+=("$f")
done
if [ "${#bad[@]}" -eq 0 ]; then record syntax ok "${#files[@]} files parse"; else record syntax FAIL "${bad[*]}"; fi

log "format: alejandra --check ($(alejandra --version 2>&1 | head -n1))"
if alejandra --check "${files[@]}"; then
  record format ok "alejandra: nothing to reformat"
else
  record format FAIL "run: alejandra ${files[*]}"
fi

log "dead code: deadnix --fail ($(deadnix --version))"
if deadnix --fail "${files[@]}"; then
  record deadnix ok "no unused bindings"
else
  record deadnix FAIL "see above (deadnix --edit fixes most)"
fi

if statix_ok; then
  log "lints: statix check ($(statix --version))"
  bad=()
  for f in "${files[@]}"; do
    statix check "$f" || bad+=("$f")
  done
  if [ "${#bad[@]}" -eq 0 ]; then record statix ok "no lints"; else record statix FAIL "${bad[*]}"; fi
elif [ "${NIX_CHECK_REQUIRE_STATIX:-0}" = 1 ]; then
  record statix FAIL "statix 0.x not on PATH (not installable from crates.io; use nix develop)"
else
  record statix SKIPPED "statix 0.x not on PATH (not installable from crates.io; nix develop has it)"
fi

echo
echo "nix-check summary"
printf '  %s\n' "${results[@]}"
if [ "$failed" -ne 0 ]; then
  echo "nix-check: FAILED"
  exit 1
fi
echo "nix-check: passed"
