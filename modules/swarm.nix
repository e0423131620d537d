# services.atoll.swarm: atoll-swarmd, the swarm node. It holds and seeds
# BLAKE3-verified blobs, advertises them on Nostr and fetches them from
# peers (QUIC, through the configured iroh relays) or HTTP origins. Its
# local API is a unix socket that members of `group` may use, e.g. with the
# `atoll` CLI. With `payment.charge` it sells bandwidth, with
# `payment.maxPriceSatPerMb` it buys, either through the local wallet
# (services.atoll.wallet), whose group it then joins. Options and layout:
# docs/nixos.md.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkDefault mkEnableOption mkIf mkOption mkPackageOption mkRenamedOptionModule optionalAttrs optionals types;

  cfg = config.services.atoll.swarm;
  atoll = import ./lib.nix {inherit lib pkgs;};

  program = "atoll-swarmd";

  # The UDP port of node.bind ("0.0.0.0:4919", "[::]:4919"), or null when
  # it cannot be read from the string.
  bindPort = atoll.portOf (cfg.settings.node.bind or "");

  # The wallet module's options, read with `or` so that this module also
  # evaluates without it (nixosModules.swarm alone); the assertion below
  # insists on it when the node sells or buys.
  wallet = config.services.atoll.wallet or {};
  pay = cfg.payment;

  # The node uses the wallet when it sells or buys, just as the daemon
  # needs `payment.wallet_socket` then; only then is `[payment]` written
  # and the wallet's group joined.
  sells = pay.charge;
  buys = pay.maxPriceSatPerMb > 0;
  usesWallet = sells || buys;

  paymentSettings =
    {
      enabled = pay.charge;
      accepted_mints = pay.acceptedMints;
      trusted_peers = pay.trustedPeers;
      max_price_sat_per_mb = pay.maxPriceSatPerMb;
      max_fee_sat = pay.maxFeeSat;
      wallet_socket = pay.walletSocket;
    }
    // optionalAttrs (pay.priceSatPerMb != null) {
      price_sat_per_mb = pay.priceSatPerMb;
    };

  configFile = atoll.mkConfigFile {
    inherit program;
    inherit (cfg) package settings;
  };
in {
  imports = [
    (atoll.serviceModule {
      name = "swarm";
      user = "atoll-swarmd";
      # iroh, the blob store and the fetches in flight (4 MiB segments from
      # several peers at once); blobs themselves stream to disk.
      memoryMax = "2G";
      tasksMax = 1024;
      api = {
        socketFile = "swarmd.sock";
        groupExample = "users";
        groupDescription = ''
          Group that may use the node's local API socket: add the people
          and services that run `atoll blob …` or `atoll status` to it.
        '';
      };
    })
    # payment.enable used to mean "use the wallet" (and, with the old
    # default charge = true, sell), while the daemon's `payment.enabled`
    # means "charge": now `charge` is the one switch, and the wallet is used
    # whenever the node sells or buys. A configuration that set only
    # `payment.enable = true` keeps its meaning (sell) with a warning; one
    # that also set `charge = false` (buy only) gets a conflict naming both.
    (mkRenamedOptionModule ["services" "atoll" "swarm" "payment" "enable"] ["services" "atoll" "swarm" "payment" "charge"])
  ];

  options.services.atoll.swarm = {
    enable = mkEnableOption "the Atoll swarm node (atoll-swarmd)";

    package = mkPackageOption pkgs "atoll" {};

    settings = atoll.mkSettingsOption {
      inherit program;
      example = {
        node.relays = ["https://relay.example.org"];
        nostr.relays = ["wss://nostr.example.org"];
        fetch.origins = ["https://blobs.example.org"];
        storage.quota_bytes = 100000000000;
      };
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the UDP port of `settings.node.bind` (QUIC, default 4919) so
        that peers can reach this node directly rather than only through
        a relay.
      '';
    };

    # Paid bandwidth (docs/swarm.md "Payment"): the options of
    # `settings.payment`, which is written only when the node sells
    # (`charge`) or buys (`maxPriceSatPerMb` > 0). Either way the node uses
    # the local wallet (services.atoll.wallet, which must be enabled) and
    # joins its group, so it may spend within the wallet's budgets.
    payment = {
      charge = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Sell: charge untrusted peers for blobs marked paid (the config
          file's `payment.enabled`). Needs `priceSatPerMb` and
          `acceptedMints`, and the local wallet, which receives the
          tokens.
        '';
      };

      priceSatPerMb = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        example = 2;
        description = ''
          Price per MB (1,000,000 bytes) served, in sat
          (`payment.price_sat_per_mb`); required with `charge`.
        '';
      };

      acceptedMints = mkOption {
        type = types.listOf types.str;
        default = [];
        example = ["https://mint.example.org"];
        description = ''
          Mint URLs whose tokens the node accepts as payment
          (`payment.accepted_mints`); at least one with `charge`. The
          wallet must trust them too (its `settings.wallet.trusted_mints`
          or `atoll wallet mints trust`), or it refuses their tokens.
        '';
      };

      trustedPeers = mkOption {
        type = types.listOf types.str;
        default = [];
        description = ''
          Endpoint ids (`atoll status` prints a node's) never charged
          (`payment.trusted_peers`).
        '';
      };

      maxPriceSatPerMb = mkOption {
        type = types.ints.unsigned;
        default = 0;
        description = ''
          Buy: the most paid per MB when fetching, in sat
          (`payment.max_price_sat_per_mb`), through the local wallet. 0:
          never pay; a paid blob then comes from another peer or the
          origin.
        '';
      };

      maxFeeSat = mkOption {
        type = types.ints.unsigned;
        default = 0;
        description = ''
          The most paid in mint and Lightning fees per payment, in sat
          (`payment.max_fee_sat`). The wallet's budgets apply on top.
        '';
      };

      walletSocket = mkOption {
        type = types.str;
        default = wallet.socket or "/run/atoll-wallet/walletd.sock";
        defaultText = lib.literalExpression "config.services.atoll.wallet.socket";
        description = ''
          The wallet's local API socket (`payment.wallet_socket`): it
          receives the tokens when selling and pays when buying.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = bindPort == null || bindPort <= 65535;
        message = "services.atoll.swarm.settings.node.bind = ${builtins.toJSON (cfg.settings.node.bind or null)}: the port must be between 0 and 65535.";
      }
      {
        assertion = cfg.openFirewall -> (bindPort != null && bindPort != 0);
        message = "services.atoll.swarm.openFirewall needs a fixed port in settings.node.bind (\"ADDRESS:PORT\", PORT not 0); it is ${builtins.toJSON (cfg.settings.node.bind or null)}.";
      }
      {
        assertion = usesWallet -> (wallet.enable or false);
        message = "services.atoll.swarm.payment: selling (charge) and buying (maxPriceSatPerMb > 0) go through the local wallet: set services.atoll.wallet.enable = true (module nixosModules.wallet, part of nixosModules.default).";
      }
      {
        assertion = sells -> (pay.priceSatPerMb != null && pay.acceptedMints != []);
        message = "services.atoll.swarm.payment.charge needs payment.priceSatPerMb and at least one payment.acceptedMints.";
      }
    ];

    warnings =
      lib.optional (!sells && (pay.priceSatPerMb != null || pay.acceptedMints != [])) ''
        services.atoll.swarm.payment: priceSatPerMb and acceptedMints take effect only with payment.charge = true; the node does not sell.'';

    services.atoll.swarm.settings = {
      node.bind = mkDefault "0.0.0.0:4919";
      payment = mkIf usesWallet paymentSettings;
    };

    environment.systemPackages = [cfg.package];

    # A port out of range is the assertion's to report, not the firewall
    # option's type check.
    networking.firewall.allowedUDPPorts = mkIf cfg.openFirewall (lib.optional (bindPort != null && bindPort <= 65535) bindPort);

    systemd.services.atoll-swarm = {
      description = "Atoll swarm node";
      wantedBy = ["multi-user.target"];
      # The wallet is up before the first fetch may pay.
      wants = ["network-online.target"] ++ optionals usesWallet ["atoll-wallet.service"];
      after = ["network-online.target"] ++ optionals usesWallet ["atoll-wallet.service"];

      serviceConfig =
        atoll.serviceConfig {network = true;}
        // {
          ExecStart = "${lib.getExe' cfg.package program} --config ${configFile}";

          # The daemon exits with 75 (EX_TEMPFAIL) at 80% of
          # node.relay_token_ttl_secs to renew its relay admission tokens,
          # which iroh fixes for an endpoint's life. That is a planned exit,
          # not a failure, and systemd restarts it whatever Restart= says
          # (on-failure from the baseline would cover 75 too). RestartSec:
          # 3 s of relay downtime rather than the baseline's 5, still too
          # slow for a crashing daemon to use up the start limit (5 starts
          # in 10 s) on a transient fault.
          SuccessExitStatus = [75];
          RestartForceExitStatus = [75];
          RestartSec = "3s";

          # The wallet's group: only then may the node open its socket, and
          # pay. User, group, state (keys and blobs) and runtime directory
          # (the socket): atoll.serviceModule above.
          SupplementaryGroups = optionals usesWallet [(wallet.group or "atoll-wallet")];
        };
    };
  };
}
