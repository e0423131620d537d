# The Rust workspace, built with crane: one filtered source, the dependencies
# compiled once (cargoArtifacts), one package per crate that has a binary,
# and one per test-only binary (testBinaries).
{
  pkgs,
  crane,
}: let
  inherit (pkgs) lib;
  inherit (lib.fileset) fileFilter fromSource maybeMissing toSource unions;

  # Crates with a binary: each becomes packages.<crate>, and all of them
  # together packages.atoll. A new service is one more line here.
  binaryCrates = [
    "atoll-cli"
    "atoll-relay"
    "atoll-swarm"
    "atoll-wallet"
  ];

  # Binaries only the tests and the demo use: packages.<binary>, never part
  # of packages.atoll (nor of a system). Binary name = the crate it is in.
  testBinaries = {
    atoll-devnet = "atoll-testkit";
  };

  # The toolchain of rust-toolchain.toml (./toolchain.nix), not nixpkgs'
  # rustc: packages, clippy, rustdoc, rustfmt and the dev shell all use it.
  # A function of the package set, as crane wants for cross builds.
  craneLib = (crane.mkLib pkgs).overrideToolchain (p: import ./toolchain.nix {pkgs = p;});

  workspace = (lib.importTOML ../Cargo.toml).workspace.package;
  inherit (workspace) version;

  # Files the build may read: manifests, lints and formatter config, the
  # sources of every crate, and each crate's test fixtures. Never `./.`:
  # docs/, hosts/, images/, the VM tests in tests/ and target/ do not
  # invalidate the build.
  cratesDir = ../crates;
  # .md: crate docs are `#![doc = include_str!("../README.md")]`.
  sourceExtensions = ["rs" "toml" "md"];
  # Any file at any depth under a directory with one of these names.
  fixtureDirs = ["tests" "testdata"];
  inFixtureDir = path: let
    relative = lib.removePrefix (toString cratesDir) (toString path);
  in
    lib.any (dir: lib.hasInfix "/${dir}/" relative) fixtureDirs;

  src = toSource {
    root = ../.;
    fileset = unions [
      ../Cargo.toml
      ../Cargo.lock
      (maybeMissing ../clippy.toml)
      (maybeMissing ../rustfmt.toml)
      (maybeMissing ../.config/nextest.toml)
      (maybeMissing ../.cargo/config.toml)
      (fileFilter (file: lib.any file.hasExt sourceExtensions) cratesDir)
      (fromSource (lib.cleanSourceWith {
        src = cratesDir;
        filter = path: type: type == "directory" || inFixtureDir path;
      }))
    ];
  };

  # nixpkgs' default FFmpeg without the GUI dependencies (x264 included);
  # ffmpeg-sys-next 9 binds FFmpeg 3.x to 9.x, so it follows nixpkgs' default.
  ffmpeg = pkgs.ffmpeg-headless;

  # Every input is here for a crate that needs it, and only for that:
  # - protoc: cdk's `mint` feature (atoll-testkit's test mints) runs
  #   tonic-prost-build in a build script;
  # - pkg-config, libclang (bindgenHook) and FFmpeg: ffmpeg-sys-next, under
  #   atoll-transcode's ffmpeg-next. Nothing else links a system library:
  #   TLS is rustls, SQLite is bundled (libsqlite3-sys).
  commonArgs = {
    inherit src version;
    pname = "atoll";
    strictDeps = true;

    nativeBuildInputs = [
      pkgs.protobuf
      pkgs.pkg-config
      pkgs.rustPlatform.bindgenHook
    ];
    # ffmpeg-next links the FFmpeg libraries; their headers come from the dev output.
    buildInputs = [ffmpeg];
  };

  # Compiled once, reused by every package and check.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;

  binaryName = crate: let
    manifest = lib.importTOML (cratesDir + "/${crate}/Cargo.toml");
  in
    (lib.head (manifest.bin or [{name = crate;}])).name;

  # All of a crate's binaries, or only `bin` (then named after it).
  buildCrate = {
    crate,
    bin ? null,
  }: let
    only = bin != null;
  in
    craneLib.buildPackage (commonArgs
      // {
        inherit cargoArtifacts;
        pname =
          if only
          then bin
          else crate;
        cargoExtraArgs = "--locked -p ${crate}" + lib.optionalString only " --bin ${bin}";
        # The workspace's tests run once, in checks.atoll-nextest.
        doCheck = false;
        meta.mainProgram =
          if only
          then bin
          else binaryName crate;
      });

  crates = lib.genAttrs binaryCrates (crate: buildCrate {inherit crate;});

  testPackages = lib.mapAttrs (bin: crate: buildCrate {inherit crate bin;}) testBinaries;

  atoll = pkgs.symlinkJoin {
    name = "atoll-${version}";
    paths = lib.attrValues crates;
    meta.mainProgram = "atoll";
  };
in {
  inherit craneLib src version commonArgs cargoArtifacts ffmpeg crates;
  packages =
    crates
    // testPackages
    // {
      inherit atoll;
      default = atoll;
    };
}
