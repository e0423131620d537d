# nixosConfigurations: one per directory in hosts/ (hosts/<name>/default.nix
# becomes nixosConfigurations.<name>). A host is wiring only; it receives the
# flake's nixosModules as a module argument and imports what it runs.
{
  nixpkgs,
  nixosModules,
}: let
  inherit (nixpkgs) lib;
  dir = ../hosts;
  hosts = lib.attrNames (lib.filterAttrs (_: type: type == "directory") (builtins.readDir dir));
in
  lib.genAttrs hosts (name:
    lib.nixosSystem {
      specialArgs = {inherit nixosModules;};
      modules = [(dir + "/${name}")];
    })
