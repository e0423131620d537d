# Every Atoll service module, each under services.atoll.<name> and off until
# enabled. A service module is modules/<name>.nix plus one line here; the
# flake exposes it as nixosModules.<name> too (nix/modules.nix). Shared
# hardening, identity, limits and settings helpers: ./lib.nix.
#
# Not here: ./devnet.nix (services.atoll.devnet), the test and development
# infrastructure of the VM tests, never for production; a machine that runs
# it imports nixosModules.devnet explicitly.
let
  services = [
    "relay"
    "swarm"
    "wallet"
  ];
in {
  imports = map (name: ./. + "/${name}.nix") services;
}
