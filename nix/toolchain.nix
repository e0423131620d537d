# The Rust toolchain of rust-toolchain.toml, for crane (nix/crane.nix):
# the official release, not nixpkgs' rustc, so that `nix build`, the clippy
# check and `nix develop` use the compiler and clippy that rustup gives
# everyone else.
#
# It is the Rust project's own build: the standalone installer
# `rust-<version>-<target>.tar.gz` from static.rust-lang.org, a fixed-output
# download checked against the SHA-256 that the Rust project publishes next
# to it (`<file>.sha256`; the same digests as nixpkgs'
# pkgs/development/compilers/rust/1_95.nix `bootstrapHashes`). Only rustc,
# the standard library, cargo, clippy and rustfmt are installed, and their
# ELF files are patched to run from the Nix store (autoPatchelfHook).
#
# A new Rust version is two edits here (the version and the digests, from
# `curl -sSf https://static.rust-lang.org/dist/rust-<v>-<target>.tar.gz.sha256`)
# and one in rust-toolchain.toml; evaluation fails with a message until they
# agree. No flake input is involved, so the flake evaluates offline with
# nixpkgs and crane alone.
{pkgs}: let
  inherit (pkgs) lib stdenv;

  version = "1.95.0";

  # rust-<version>-<target>.tar.gz.sha256, per Rust target.
  sha256 = {
    x86_64-unknown-linux-gnu = "a47ac940abd12399d59ad15c877e7113fa35f2b9ec7e6a8a045d4fd8b9741dea";
    aarch64-unknown-linux-gnu = "3b9385d3144ac57616befa0ccbac524f857ba1b4ab074226e73a24d43568a98e";
  };

  pinned = (lib.importTOML ../rust-toolchain.toml).toolchain.channel;
  target = stdenv.hostPlatform.rust.rustcTarget;

  # The installer's component names (clippy and rustfmt have carried a
  # `-preview` suffix): matched against its `components` file.
  components = "rustc|cargo|rust-std-${target}|clippy(-preview)?|rustfmt(-preview)?";
  tools = ["rustc" "rustdoc" "cargo" "cargo-clippy" "clippy-driver" "rustfmt" "cargo-fmt"];
in
  assert lib.assertMsg (pinned == version) ''
    nix/toolchain.nix builds Rust ${version}, but rust-toolchain.toml pins ${pinned}:
    update both together (nix/toolchain.nix: `version` and the `sha256` of each target).'';
  assert lib.assertMsg (sha256 ? ${target}) ''
    nix/toolchain.nix has no Rust ${version} for ${target}: add its sha256
    (https://static.rust-lang.org/dist/rust-${version}-${target}.tar.gz.sha256).'';
    stdenv.mkDerivation {
      pname = "rust-toolchain";
      inherit version;

      src = pkgs.fetchurl {
        url = "https://static.rust-lang.org/dist/rust-${version}-${target}.tar.gz";
        sha256 = sha256.${target};
      };

      nativeBuildInputs = [pkgs.autoPatchelfHook];
      # libgcc_s and zlib, which rustc, cargo and the LLVM library link.
      buildInputs = [stdenv.cc.cc.lib pkgs.zlib];

      dontConfigure = true;
      dontBuild = true;
      # Stripping breaks the rlibs of the standard library.
      dontStrip = true;

      installPhase = ''
        runHook preInstall
        patchShebangs install.sh
        selected=$(grep -xE '${components}' components | paste -sd, -)
        echo "installing Rust ${version} components: $selected"
        ./install.sh --prefix="$out" --components="$selected" --disable-ldconfig
        for tool in ${lib.concatStringsSep " " tools}; do
          [ -x "$out/bin/$tool" ] || { echo "Rust ${version}: bin/$tool missing" >&2; exit 1; }
        done
        runHook postInstall
      '';

      meta = {
        description = "Rust ${version} (rustc, cargo, clippy, rustfmt), the official release pinned by rust-toolchain.toml";
        homepage = "https://www.rust-lang.org/";
        license = [lib.licenses.mit lib.licenses.asl20];
        sourceProvenance = [lib.sourceTypes.binaryNativeCode];
        platforms = ["x86_64-linux" "aarch64-linux"];
        mainProgram = "rustc";
      };
    }
