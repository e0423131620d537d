# services.atoll.swarm: atoll-swarmd, the swarm node. It holds and seeds
# BLAKE3-verified blobs, advertises them on Nostr and fetches them from
# peers (QUIC, through the configured iroh relays) or HTTP origins. Its
# local API is a unix socket that members of `group` may use, e.g. with the
# `atoll` CLI. Options and layout: docs/nixos.md.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkDefault mkEnableOption mkIf mkOption mkPackageOption types;

  cfg = config.services.atoll.swarm;
  atoll = import ./lib.nix {inherit lib pkgs;};

  program = "atoll-swarmd";

  # The DynamicUser= name. It must differ from `group`: systemd refuses to
  # start a dynamic user whose name is already taken by a static group.
  user = "atoll-swarmd";

  # The daemon's default socket: <RuntimeDirectory>/swarmd.sock.
  defaultSocket = "/run/atoll-swarm/swarmd.sock";

  # The UDP port of node.bind ("0.0.0.0:4919", "[::]:4919"), or null when
  # it cannot be read from the string.
  bindPort = atoll.portOf (cfg.settings.node.bind or "");

  configFile = atoll.mkConfigFile {
    inherit program;
    inherit (cfg) package settings;
  };
in {
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

    group = mkOption {
      type = types.str;
      default = "atoll-swarm";
      example = "users";
      description = ''
        Group that may use the node's local API socket (mode 0660 in a
        0750 runtime directory): add the people and services that run
        `atoll blob …` or `atoll status` to it. Created if it does not
        exist. The daemon runs as this group with a dynamic user.
      '';
    };

    socket = mkOption {
      type = types.str;
      readOnly = true;
      default = cfg.settings.api.socket or defaultSocket;
      defaultText = lib.literalExpression ''
        config.services.atoll.swarm.settings.api.socket or "${defaultSocket}"
      '';
      description = ''
        Path of the local API socket, for other modules and clients to
        refer to (the CLI reads it from `ATOLL_SWARM_SOCKET`).
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.group != user;
        message = "services.atoll.swarm.group must not be \"${user}\", the name of the service's dynamic user.";
      }
      {
        assertion = cfg.openFirewall -> (bindPort != null && bindPort != 0);
        message = "services.atoll.swarm.openFirewall needs a fixed port in settings.node.bind (\"ADDRESS:PORT\", PORT not 0); it is ${builtins.toJSON (cfg.settings.node.bind or null)}.";
      }
    ];

    services.atoll.swarm.settings.node.bind = mkDefault "0.0.0.0:4919";

    users.groups.${cfg.group} = {};

    environment.systemPackages = [cfg.package];
    environment.variables.ATOLL_SWARM_SOCKET = cfg.socket;

    networking.firewall.allowedUDPPorts = mkIf cfg.openFirewall (lib.optional (bindPort != null) bindPort);

    systemd.services.atoll-swarm = {
      description = "Atoll swarm node";
      wantedBy = ["multi-user.target"];
      wants = ["network-online.target"];
      after = ["network-online.target"];

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

          DynamicUser = true;
          User = user;
          # A static group (users.groups above): its members may use the socket.
          Group = cfg.group;

          # /var/lib/private/atoll-swarm: keys and blobs; the daemon's alone.
          StateDirectory = "atoll-swarm";
          StateDirectoryMode = "0700";
          # /run/atoll-swarm: the API socket, which the daemon makes 0660
          # itself, so the baseline UMask=0077 stays.
          RuntimeDirectory = "atoll-swarm";
          RuntimeDirectoryMode = "0750";
        };
    };
  };
}
