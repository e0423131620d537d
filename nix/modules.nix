# nixosModules: `default` (every service, each off until enabled) and one per
# module file in modules/ (modules/<name>.nix becomes nixosModules.<name>).
# nixosModules.devnet is test and development infrastructure, not a service
# for production machines: `default` leaves it out, and the VM tests that
# need it import it explicitly.
# Each also adds the overlay that provides pkgs.atoll, the modules' package.
{overlay}: let
  dir = ../modules;
  # Helpers and the aggregate, not services.
  notServices = ["default.nix" "lib.nix"];

  files = builtins.attrNames (builtins.readDir dir);
  serviceFiles =
    builtins.filter (file: builtins.match ".*\\.nix" file != null && !(builtins.elem file notServices)) files;

  withOverlay = module: {
    imports = [module];
    nixpkgs.overlays = [overlay];
  };

  nameOf = file: builtins.head (builtins.match "(.*)\\.nix" file);
in
  builtins.listToAttrs (map (file: {
      name = nameOf file;
      value = withOverlay (dir + "/${file}");
    })
    serviceFiles)
  // {
    default = withOverlay (dir + "/default.nix");
  }
