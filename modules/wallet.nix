# services.atoll.wallet: atoll-walletd, the node's Cashu wallet. It holds
# ecash at the mints it trusts, pays peers within the budgets of its config
# and talks HTTPS to the mints. Its local API is a unix socket, and whoever
# may open the socket may SPEND: members of `group` only (the swarm node
# joins it when services.atoll.swarm.payment.enable is set). The seed is
# made on first start in the state directory. Options and layout:
# docs/nixos.md; the wallet itself: docs/wallet.md.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkEnableOption mkIf mkOption mkPackageOption types;

  cfg = config.services.atoll.wallet;
  atoll = import ./lib.nix {inherit lib pkgs;};

  program = "atoll-walletd";
  unit = "atoll-wallet";

  # The DynamicUser= name. It must differ from `group`: systemd refuses to
  # start a dynamic user whose name is already taken by a static group.
  user = "atoll-walletd";

  # The daemon's default socket, <RuntimeDirectory>/walletd.sock; also the
  # CLI's default (crates/atoll-cli/src/wallet.rs DEFAULT_SOCKET).
  defaultSocket = "/run/${unit}/walletd.sock";

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

    group = mkOption {
      type = types.str;
      default = "atoll-wallet";
      example = "atoll-spenders";
      description = ''
        Group that may use the wallet's local API socket (mode 0660 in a
        0750 runtime directory), and so SPEND its ecash within the
        budgets. Only the services and people that must pay belong here:
        the swarm node joins it (SupplementaryGroups=) when
        {option}`services.atoll.swarm.payment.enable` is set. Created if
        it does not exist. The daemon runs as this group with a dynamic
        user.
      '';
    };

    socket = mkOption {
      type = types.str;
      readOnly = true;
      default = cfg.settings.api.socket or defaultSocket;
      defaultText = lib.literalExpression ''
        config.services.atoll.wallet.settings.api.socket or "${defaultSocket}"
      '';
      description = ''
        Path of the local API socket, for other modules and clients to
        refer to (the CLI reads it from `ATOLL_WALLET_SOCKET`; the swarm
        node's `payment.walletSocket` defaults to it).
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.group != user;
        message = "services.atoll.wallet.group must not be \"${user}\", the name of the service's dynamic user.";
      }
      # The seed is the wallet: never in the world-readable store.
      (atoll.assertSecretNotInStore "services.atoll.wallet.settings.wallet.seed_file" (cfg.settings.wallet.seed_file or null))
    ];

    users.groups.${cfg.group} = {};

    # `atoll wallet …`
    environment.systemPackages = [cfg.package];
    environment.variables.ATOLL_WALLET_SOCKET = cfg.socket;

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

          DynamicUser = true;
          User = user;
          # A static group (users.groups above): its members may spend.
          Group = cfg.group;

          # /var/lib/private/atoll-wallet: keys/wallet.seed (the recovery
          # phrase: back it up), the cdk database, the trust list, the
          # budget ledger and the swap journal; the daemon's alone.
          StateDirectory = unit;
          StateDirectoryMode = "0700";
          # /run/atoll-wallet: the API socket, which the daemon makes 0660
          # itself, so the baseline UMask=0077 stays.
          RuntimeDirectory = unit;
          RuntimeDirectoryMode = "0750";
        };
    };
  };
}
