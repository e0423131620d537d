# services.atoll.wallet: atoll-walletd, the node's Cashu wallet. It holds
# ecash at the mints it trusts, pays peers within the budgets of its config
# and talks HTTPS to the mints. Its local API is a unix socket, and whoever
# may open the socket may SPEND: members of `group` only (the swarm node
# joins it when it sells or buys, services.atoll.swarm.payment). The seed is
# made on first start in the state directory. Options and layout:
# docs/nixos.md; the wallet itself: docs/wallet.md.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkEnableOption mkIf mkPackageOption;

  cfg = config.services.atoll.wallet;
  atoll = import ./lib.nix {inherit lib pkgs;};

  program = "atoll-walletd";
  unit = "atoll-wallet";

  # `atoll-walletd --check-config` parses the file and validates it (mint
  # URLs, budget order) and exits before it opens the state directory, the
  # seed file or the socket (crates/atoll-wallet/src/main.rs), so no
  # checkEnv stand-ins are needed: a seed_file that exists only at run time
  # is never read at build time.
  configFile = atoll.mkConfigFile {
    inherit program;
    inherit (cfg) package settings;
  };
in {
  imports = [
    (atoll.serviceModule {
      name = "wallet";
      user = "atoll-walletd";
      # cdk, two SQLite databases and HTTPS to a few mints.
      memoryMax = "512M";
      tasksMax = 512;
      api = {
        # Also the CLI's default (crates/atoll-cli/src/wallet.rs DEFAULT_SOCKET).
        socketFile = "walletd.sock";
        groupExample = "atoll-spenders";
        groupDescription = ''
          Group that may use the wallet's local API socket, and so SPEND
          its ecash within the budgets. Only the services and people that
          must pay belong here: the swarm node joins it
          (SupplementaryGroups=) when it sells or buys
          (`services.atoll.swarm.payment`).
        '';
        socketDescription = " The swarm node's `payment.walletSocket` defaults to it.";
      };
    })
  ];

  options.services.atoll.wallet = {
    enable = mkEnableOption "the Atoll wallet (atoll-walletd), Cashu ecash over trusted mints";

    package = mkPackageOption pkgs "atoll" {};

    settings = atoll.mkSettingsOption {
      inherit program;
      example = {
        wallet.trusted_mints = ["https://mint.example.org"];
        budget = {
          per_payment_sat = 1000;
          per_day_sat = 10000;
        };
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      # The seed is the wallet: never in the world-readable store.
      (atoll.assertSecretNotInStore "services.atoll.wallet.settings.wallet.seed_file" (cfg.settings.wallet.seed_file or null))
    ];

    # `atoll wallet …`
    environment.systemPackages = [cfg.package];

    systemd.services.${unit} = {
      description = "Atoll wallet";
      wantedBy = ["multi-user.target"];
      wants = ["network-online.target"];
      after = ["network-online.target"];

      serviceConfig =
        atoll.serviceConfig {network = true;}
        // {
          ExecStart = "${lib.getExe' cfg.package program} --config ${configFile}";

          # HTTPS to the mints and the unix socket; unlike iroh, nothing
          # here watches interfaces, so no AF_NETLINK.
          RestrictAddressFamilies = ["AF_UNIX" "AF_INET" "AF_INET6"];

          # Before READY=1 the daemon settles its swap journal, one mint
          # call (60 s at most each) per unfinished step: more than the
          # default 90 s when a mint is down.
          TimeoutStartSec = "5min";

          # User, group (whose members may spend), the state directory
          # (keys/wallet.seed, the recovery phrase: back it up; the cdk
          # database, the trust list, the budget ledger and the swap
          # journal) and the runtime directory (the socket):
          # atoll.serviceModule above.
        };
    };
  };
}
