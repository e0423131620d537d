# services.atoll.relay: atoll-relayd, an iroh relay for one group. It admits
# a node only with an admission token signed by a member's Nostr key: the
# owner, the keys in the members file, and the owner's signed list on Nostr.
# Removed members are cut off within seconds. Options and layout:
# docs/nixos.md; the relay itself: docs/relay.md.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkEnableOption mkIf mkOption mkPackageOption optional optionalAttrs types;

  cfg = config.services.atoll.relay;
  atoll = import ./lib.nix {inherit lib pkgs;};

  program = "atoll-relayd";
  unit = "atoll-relay";
  stateDir = "/var/lib/${unit}";

  # LoadCredential= copies the TLS files here, readable by the service only.
  credentials = "/run/credentials/${unit}.service";
  tls = cfg.tls.certificateFile != null || cfg.tls.keyFile != null;

  # The daemon's own defaults (crates/atoll-relay/src/config.rs) where
  # `settings` leaves an address out.
  bind = cfg.settings.server.bind or "127.0.0.1:3340";
  tcpPort = atoll.portOf bind;
  publicUrl = cfg.settings.server.public_url or null;
  # TLS from the options or written into `settings` by hand.
  anyTls = cfg.settings ? tls;
  insecureHttp = cfg.settings.server.insecure_http or false;
  quic = cfg.settings.quic.address_discovery or false;
  udpPort = atoll.portOf (cfg.settings.quic.bind or "0.0.0.0:7842");

  loopback = address: builtins.match "(127\\.[0-9.]+|\\[::1]|localhost):[0-9]+" (toString address) != null;

  # Binding below 1024 needs CAP_NET_BIND_SERVICE; port 0 needs nothing.
  privileged = port: port != null && port > 0 && port < 1024;
  needsBindCapability = privileged tcpPort || (quic && privileged udpPort);

  # The members file as the daemon sees it: a Nix path value is copied to
  # the store ("${./members}"), a string is taken as it is.
  membersFile =
    if builtins.isPath cfg.membersFile
    then "${cfg.membersFile}"
    else if cfg.membersFile == null
    then null
    else toString cfg.membersFile;

  # The members file that the module creates (in the state directory), or
  # null when it is the administrator's (elsewhere, or none).
  managedMembersFile =
    if membersFile != null && lib.hasPrefix "${stateDir}/" membersFile
    then membersFile
    else null;

  # `atoll relay members add` (as root) writes a new file with the old one's
  # mode: 0644 keeps it readable by the relay's dynamic user. The state
  # directory itself is 0700, so only root and the relay see the list.
  createMembersFile = pkgs.writeShellScript "${unit}-members-file" ''
    umask 022
    [ -e ${lib.escapeShellArg managedMembersFile} ] || : > ${lib.escapeShellArg managedMembersFile}
  '';

  configFile = atoll.mkConfigFile {
    inherit program;
    inherit (cfg) package settings;
    # --check-config reads the members file and stats the TLS files; at
    # build time neither exists (they are state and credentials), so the
    # check reads /dev/null instead. A members file in the Nix store is
    # checked as it is. Read from `settings`, so that files named there
    # directly are covered too.
    checkEnv = let
      members = cfg.settings.membership.members_file or null;
    in
      optionalAttrs (members != null && !(atoll.inStore members)) {
        ATOLL_RELAYD_MEMBERSHIP__MEMBERS_FILE = "/dev/null";
      }
      // optionalAttrs (cfg.settings ? tls) {
        ATOLL_RELAYD_TLS__CERT_FILE = "/dev/null";
        ATOLL_RELAYD_TLS__KEY_FILE = "/dev/null";
      };
  };
in {
  imports = [
    (atoll.serviceModule {
      name = "relay";
      user = "atoll-relayd";
      # One relayed connection holds a few small queues; 1 GiB carries
      # thousands of them.
      memoryMax = "1G";
      tasksMax = 1024;
    })
  ];

  options.services.atoll.relay = {
    enable = mkEnableOption "the Atoll relay (atoll-relayd), an iroh relay for one group's members";

    package = mkPackageOption pkgs "atoll" {};

    settings = atoll.mkSettingsOption {
      inherit program;
      example = {
        server = {
          bind = "[::]:443";
          public_url = "https://relay.example.org";
        };
        quic.address_discovery = true;
        membership.nostr_relays = ["wss://nostr.example.org"];
      };
    };

    owner = mkOption {
      type = types.nullOr (types.strMatching "npub1[02-9ac-hj-np-z]{58}|[0-9a-f]{64}");
      # Required: null only so that leaving it out fails with an assertion
      # that says what to put here.
      default = null;
      example = "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d";
      description = ''
        The relay owner's Nostr public key (`npub1…` or 64 hex characters),
        always a member and the signer of the membership list
        (`settings.membership.owner`). `atoll keys show --dir KEYDIR`
        prints a node's.
      '';
    };

    membersFile = mkOption {
      type = types.nullOr types.path;
      default = "${stateDir}/members";
      example = "/etc/atoll/relay-members";
      description = ''
        The members file (`settings.membership.members_file`): one Nostr
        key per line, re-read every second, so changes need no restart.
        The default, in the relay's state directory, is created empty
        (mode 0644) before the first start, for
        {command}`atoll relay members add --file ${stateDir}/members npub1…`
        as root. A file elsewhere is the administrator's to create and keep
        readable by the service (not under /home); a file in the Nix store
        is fixed and checked at build time. `null`: no file, only the owner
        and the owner's list on Nostr.
      '';
    };

    tls = {
      certificateFile = atoll.mkSecretFileOption ''
        PEM certificate chain for HTTPS (and QUIC address discovery),
        loaded with LoadCredential=, so it may be readable by root only
        (e.g. `/var/lib/acme/<domain>/fullchain.pem`). Without it and
        `keyFile` the relay speaks plain HTTP, which it allows only on a
        loopback address or with `settings.server.insecure_http = true`.
      '';
      keyFile = atoll.mkSecretFileOption ''
        PEM private key for `certificateFile`, loaded with
        LoadCredential=. The service reads its copy; restart it after a
        renewal (with security.acme: `reloadServices = ["${unit}.service"]`).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the TCP port of `settings.server.bind` and, with
        `settings.quic.address_discovery`, the UDP port of
        `settings.quic.bind` (default 7842).
      '';
    };
  };

  config = mkIf cfg.enable {
    # What the daemon refuses to start without (RelaydConfig::validate in
    # crates/atoll-relay/src/config.rs), refused here when the system is
    # evaluated rather than by --check-config when it is built.
    assertions = [
      {
        assertion = cfg.owner != null;
        message = "services.atoll.relay.owner is required: the relay owner's Nostr public key (npub1… or 64 hex characters), always a member and the signer of the membership list; `atoll keys show --dir KEYDIR` prints a node's.";
      }
      {
        assertion = publicUrl != null;
        message = "services.atoll.relay.settings.server.public_url is required: the URL nodes use for this relay (e.g. \"https://relay.example.org\"), which every admission token names.";
      }
      {
        assertion = anyTls || loopback bind || insecureHttp;
        message = "services.atoll.relay: settings.server.bind = ${builtins.toJSON bind} is not a loopback address and there is no TLS certificate: set tls.certificateFile and tls.keyFile, or settings.server.insecure_http = true (behind a TLS-terminating proxy on another host, or in a lab).";
      }
      {
        assertion = quic -> anyTls;
        message = "services.atoll.relay.settings.quic.address_discovery needs TLS: set tls.certificateFile and tls.keyFile.";
      }
      {
        assertion = (tcpPort == null || tcpPort <= 65535) && (udpPort == null || udpPort <= 65535);
        message = "services.atoll.relay: the ports of settings.server.bind (${builtins.toJSON bind}) and settings.quic.bind must be between 0 and 65535.";
      }
      {
        assertion = tls -> (cfg.tls.certificateFile != null && cfg.tls.keyFile != null);
        message = "services.atoll.relay.tls: set both certificateFile and keyFile, or neither (plain HTTP).";
      }
      {
        assertion = cfg.openFirewall -> (tcpPort != null && tcpPort != 0 && !(loopback bind));
        message = "services.atoll.relay.openFirewall needs settings.server.bind on a non-loopback address with a fixed port (\"ADDRESS:PORT\"); it is ${builtins.toJSON bind}.";
      }
      {
        assertion = cfg.openFirewall && quic -> (udpPort != null && udpPort != 0);
        message = "services.atoll.relay.openFirewall needs a fixed port in settings.quic.bind; it is ${builtins.toJSON (cfg.settings.quic.bind or null)}.";
      }
      # The options' type refuses store paths; settings written by hand
      # are checked here.
      (atoll.assertSecretNotInStore "services.atoll.relay.settings.tls.key_file" (cfg.settings.tls.key_file or null))
    ];

    services.atoll.relay.settings = {
      membership =
        optionalAttrs (cfg.owner != null) {inherit (cfg) owner;}
        // optionalAttrs (membersFile != null) {members_file = membersFile;};
      tls = mkIf tls {
        cert_file = "${credentials}/cert.pem";
        key_file = "${credentials}/key.pem";
      };
    };

    # `atoll relay members …`, `atoll relay check`, `atoll keys show`.
    environment.systemPackages = [cfg.package];

    networking.firewall = mkIf cfg.openFirewall {
      # Out-of-range ports are the assertion's to report.
      allowedTCPPorts = optional (tcpPort != null && tcpPort <= 65535) tcpPort;
      allowedUDPPorts = optional (quic && udpPort != null && udpPort <= 65535) udpPort;
    };

    systemd.services.${unit} = {
      description = "Atoll relay";
      wantedBy = ["multi-user.target"];
      wants = ["network-online.target"];
      after = ["network-online.target"];

      serviceConfig =
        atoll.serviceConfig {network = true;}
        // {
          ExecStart = "${lib.getExe' cfg.package program} --config ${configFile}";
          ExecStartPre = optional (managedMembersFile != null) createMembersFile;

          # User and the state directory (/var/lib/private/atoll-relay: the
          # members file): atoll.serviceModule above.

          LoadCredential = lib.optionals tls [
            "cert.pem:${toString cfg.tls.certificateFile}"
            "key.pem:${toString cfg.tls.keyFile}"
          ];
        }
        // optionalAttrs needsBindCapability {
          # The baseline's empty bounding set, widened by exactly this.
          AmbientCapabilities = ["CAP_NET_BIND_SERVICE"];
          CapabilityBoundingSet = ["CAP_NET_BIND_SERVICE"];
        };
    };
  };
}
