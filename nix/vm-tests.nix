# NixOS VM tests: tests/<name>.nix becomes checks.<system>.vm-<name>, on
# x86_64-linux only. A test is one more line in `tests` below.
#
# Every node imports nixosModules.default, as a user's machine would, so
# pkgs.atoll is the crane build from this flake (through its overlay).
# Test-only binaries (packages.atoll-devnet) reach a test as its module
# argument `atollPackages`, and the flake's modules as `atollModules`: a node
# that runs the test infrastructure imports `atollModules.devnet` itself.
{
  pkgs,
  rust,
  nixosModules,
}: let
  inherit (pkgs) lib;

  tests = [
    "payment"
    "relay"
    "swarm"
  ];

  runTest = name:
    pkgs.testers.runNixOSTest {
      imports = [(../tests + "/${name}.nix")];
      # The modules set nixpkgs.overlays (for pkgs.atoll), which the
      # read-only node pkgs of runNixOSTest would refuse.
      node.pkgsReadOnly = false;
      defaults.imports = [nixosModules.default];
      _module.args.atollPackages = rust.packages;
      _module.args.atollModules = nixosModules;
    };
in
  lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux")
  (lib.listToAttrs (map (name: lib.nameValuePair "vm-${name}" (runTest name)) tests))
