# `nix develop`: the toolchain crane builds with (cargo, rustc, clippy,
# rustfmt), every build input of the checks (pkg-config, protoc, libclang for
# bindgen, FFmpeg headers), and the tools the scripts and tests call.
{
  pkgs,
  rust,
  checks,
}:
rust.craneLib.devShell {
  inherit checks;

  packages = [
    pkgs.cargo-nextest
    pkgs.rust-analyzer
    (pkgs.lib.getBin rust.ffmpeg) # the ffmpeg command: test media for atoll-transcode
    pkgs.iproute2 # `ip netns` for the namespace scenarios
    # Nix: formatter and linters, as in scripts/nix-check.sh
    pkgs.alejandra
    pkgs.deadnix
    pkgs.statix
  ];

  RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
}
