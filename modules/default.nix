# Every Atoll service module, each under services.atoll.<name> and off until
# enabled. A service module is modules/<name>.nix plus one line here; the
# flake exposes it as nixosModules.<name> too (nix/modules.nix). Shared
# hardening and settings helpers: ./lib.nix. `devnet` is test and
# development infrastructure (the VM tests' relays, origin and test mints),
# never for production; it is here so that a test node needs no extra import.
let
  services = [
    "devnet"
    "relay"
    "swarm"
    "wallet"
  ];
in {
  imports = map (name: ./. + "/${name}.nix") services;
}
