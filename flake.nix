{
  description = "Atoll: a home-server appliance OS whose Rust services join a swarm of peers";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
  };

  # This file only wires outputs together; the parts live in ./nix:
  # crane.nix (packages), checks.nix (with vm-tests.nix), devshell.nix,
  # modules.nix, hosts.nix.
  outputs = {
    self,
    nixpkgs,
    crane,
  }: let
    inherit (nixpkgs) lib;

    systems = ["x86_64-linux" "aarch64-linux"];

    # Everything per system hangs off one crane build of the workspace.
    perSystem = f:
      lib.genAttrs systems (system: let
        pkgs = nixpkgs.legacyPackages.${system};
        rust = import ./nix/crane.nix {inherit pkgs crane;};
      in
        f {inherit pkgs rust;});
  in {
    packages = perSystem ({rust, ...}: rust.packages);

    apps = perSystem (import ./nix/apps.nix);

    checks = perSystem ({
      pkgs,
      rust,
    }:
      import ./nix/checks.nix {
        inherit pkgs rust;
        inherit (self) nixosModules;
      });

    devShells = perSystem ({
      pkgs,
      rust,
    }: {
      default = import ./nix/devshell.nix {
        inherit pkgs rust;
        # The build checks' inputs; the VM tests would only slow the shell down.
        checks = lib.filterAttrs (name: _: !lib.hasPrefix "vm-" name) self.checks.${pkgs.stdenv.hostPlatform.system};
      };
    });

    formatter = perSystem ({pkgs, ...}: pkgs.alejandra);

    # pkgs.atoll for the NixOS modules (lib.mkPackageOption pkgs "atoll" { }).
    overlays.default = final: _prev: {
      inherit (self.packages.${final.stdenv.hostPlatform.system}) atoll;
    };

    nixosModules = import ./nix/modules.nix {overlay = self.overlays.default;};

    nixosConfigurations = import ./nix/hosts.nix {
      inherit nixpkgs;
      inherit (self) nixosModules;
    };
  };
}
