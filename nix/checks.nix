# `nix flake check`: the packages, then clippy, rustdoc, rustfmt and the test
# suite over the whole workspace (all reusing rust.cargoArtifacts), the Nix
# lints, and the NixOS VM tests from tests/ (vm-*, ./vm-tests.nix).
{
  pkgs,
  rust,
  nixosModules,
}: let
  inherit (pkgs) lib;
  inherit (rust) craneLib commonArgs cargoArtifacts;

  withArtifacts = args: commonArgs // {inherit cargoArtifacts;} // args;

  nixFiles = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ../.;
  };
in
  rust.packages
  // {
    atoll-clippy = craneLib.cargoClippy (withArtifacts {
      cargoClippyExtraArgs = "--all-targets -- -D warnings";
    });

    atoll-doc = craneLib.cargoDoc (withArtifacts {
      cargoDocExtraArgs = "--no-deps --workspace";
      env.RUSTDOCFLAGS = "-D warnings";
    });

    atoll-fmt = craneLib.cargoFmt {
      inherit (commonArgs) src pname version;
    };

    # The build sandbox has loopback only, which the tests use. Tests that need
    # root for network namespaces carry `netns` in their name (or their test
    # binary's) and run outside Nix (scripts, CI as root).
    atoll-nextest = craneLib.cargoNextest (withArtifacts {
      cargoNextestExtraArgs = "--no-tests=warn -E 'not (test(/netns/) | binary(/netns/))'";
      # The ffmpeg command, for atoll-transcode's test media (drop it if its
      # tests make none with the command).
      nativeBuildInputs = commonArgs.nativeBuildInputs ++ [(lib.getBin rust.ffmpeg)];
      preCheck = ''
        export HOME="$TMPDIR"
      '';
    });

    atoll-nix-lint =
      pkgs.runCommand "atoll-nix-lint" {
        nativeBuildInputs = [pkgs.alejandra pkgs.deadnix pkgs.statix];
      } ''
        cd ${nixFiles}
        alejandra --check .
        deadnix --fail .
        statix check .
        touch $out
      '';
  }
  // import ./vm-tests.nix {inherit pkgs rust nixosModules;}
