# `nix run .#demo`: the same local swarm as `make demo`, from the built
# packages (no cargo at run time).
{
  pkgs,
  rust,
}: let
  bins = pkgs.symlinkJoin {
    name = "atoll-demo-bins";
    paths = [rust.packages.atoll rust.packages.atoll-devnet];
  };
  demo = pkgs.writeShellApplication {
    name = "atoll-demo";
    runtimeInputs = [pkgs.coreutils pkgs.curl pkgs.diffutils pkgs.gawk pkgs.gnugrep];
    text = ''
      export ATOLL_BIN_DIR=${bins}/bin
      exec ${pkgs.bash}/bin/bash ${../scripts/demo.sh} "$@"
    '';
  };
in {
  demo = {
    type = "app";
    program = "${demo}/bin/atoll-demo";
    meta.description = "A local Atoll swarm on this machine (devnet, nodes, a wallet): `make demo` from the built packages";
  };
}
