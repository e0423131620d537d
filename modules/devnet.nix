# services.atoll.devnet: atoll-devnet, TEST AND DEVELOPMENT INFRASTRUCTURE,
# never for production. One process runs an open iroh relay (plain HTTP,
# admits everyone), a Nostr relay, optionally a static HTTP origin, and
# Cashu test mints on one fake Lightning network whose state is thrown away
# at every start, plus an endpoint that pays their invoices from outside
# (`POST /pay`). The NixOS VM tests use it (the relay nodes of
# tests/swarm.nix and tests/relay.nix, tests/payment.nix's infra node); a
# real group runs services.atoll.relay, a real Nostr relay and a real mint
# instead. It is not part of nixosModules.default: a machine that wants it
# imports nixosModules.devnet. Options: docs/nixos.md.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) concatMap mkEnableOption mkIf mkOption optionals types;

  cfg = config.services.atoll.devnet;
  atoll = import ./lib.nix {inherit lib pkgs;};

  program = "atoll-devnet";
  unit = "atoll-devnet";

  origin = cfg.originDir != null;
  lightning = cfg.mints > 0;
  lastMintPort = cfg.mintPort + cfg.mints - 1;

  # Every TCP listener as {name, address, port}, port null when it cannot
  # be read from the address.
  listeners =
    [
      {
        name = "irohBind";
        address = cfg.irohBind;
      }
      {
        name = "nostrBind";
        address = cfg.nostrBind;
      }
    ]
    ++ optionals origin [
      {
        name = "originBind";
        address = cfg.originBind;
      }
    ]
    ++ optionals lightning [
      {
        name = "lightningBind";
        address = cfg.lightningBind;
      }
    ];
  withPorts = map (l: l // {port = atoll.portOf l.address;}) listeners;
  # Port 0: ephemeral ports, nothing to open.
  mintPorts = optionals (lightning && cfg.mintPort != 0) (lib.range cfg.mintPort lastMintPort);
  ports = map (l: l.port) withPorts ++ mintPorts;

  # Binding below 1024 needs CAP_NET_BIND_SERVICE; port 0 needs nothing.
  needsBindCapability = lib.any (port: port != null && port > 0 && port < 1024) ports;

  args =
    [
      "--iroh-bind"
      cfg.irohBind
      "--nostr-bind"
      cfg.nostrBind
    ]
    ++ optionals origin [
      "--origin-dir"
      # A Nix path value is copied to the store, a string taken as it is.
      "${cfg.originDir}"
      "--origin-bind"
      cfg.originBind
    ]
    ++ optionals lightning [
      "--mints"
      (toString cfg.mints)
      "--mint-bind"
      cfg.mintBind
      "--mint-port"
      (toString cfg.mintPort)
      "--melt-fee-sat"
      (toString cfg.meltFeeSat)
      "--lightning-bind"
      cfg.lightningBind
    ];

  bindOption = default: what:
    mkOption {
      type = types.str;
      inherit default;
      example = "[::]:${toString (atoll.portOf default)}";
      description = ''
        Address (`IP:PORT`, `[IPv6]:PORT`; port 0: an ephemeral one) of
        ${what}. `[::]` listens on IPv4 and IPv6.
      '';
    };
in {
  imports = [
    (atoll.serviceModule {
      name = "devnet";
      user = "atoll-devnet";
      # The mints' SQLite databases live in a temporary directory of the
      # baseline's PrivateTmp=, gone at every stop: no state directory.
      state = false;
      memoryMax = "1G";
      tasksMax = 1024;
    })
  ];

  options.services.atoll.devnet = {
    enable = mkEnableOption ''
      atoll-devnet, local infrastructure for tests and development: an
      open iroh relay, a Nostr relay, an HTTP origin and Cashu test mints
      on a fake Lightning network. NOT FOR PRODUCTION: the relay admits
      anyone, the mints' ecash is play money and vanishes at every
      restart, and anyone who reaches the Lightning endpoint can fund any
      wallet'';

    package = mkOption {
      # Required: null only so that leaving it out fails with an assertion
      # that says where to get it.
      type = types.nullOr types.package;
      default = null;
      example = lib.literalExpression "atoll.packages.\${pkgs.stdenv.hostPlatform.system}.atoll-devnet";
      description = ''
        The package with {command}`${program}`: the flake's
        `packages.<system>.atoll-devnet` (crate atoll-testkit). It is not
        part of `pkgs.atoll`, so there is no default; the VM tests get it
        as the module argument `atollPackages`.
      '';
    };

    irohBind = bindOption "127.0.0.1:3340" "the iroh relay (`--iroh-bind`), plain HTTP: `http://HOST:PORT` in the swarm's `node.relays`";

    nostrBind = bindOption "127.0.0.1:7777" "the Nostr relay (`--nostr-bind`): `ws://HOST:PORT` in the swarm's `nostr.relays`";

    originDir = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/srv/origin";
      description = ''
        Directory whose files the HTTP origin serves as
        `http://HOST:PORT/<name>` (`--origin-dir`; plain file names only,
        read at each request, so files may be added while it runs). They
        must be readable by everyone (the service runs as a dynamic user)
        and not under /home. `null`: no origin.
      '';
    };

    originBind = bindOption "127.0.0.1:8080" "the HTTP origin (`--origin-bind`), with `originDir` only";

    mints = mkOption {
      type = types.ints.between 0 100;
      default = 0;
      example = 2;
      description = ''
        How many Cashu test mints to run (`--mints`), all on one fake
        Lightning network, so that a melt at one pays an invoice of
        another. Each start makes new mints (new keys, no ecash): wallets
        funded before a restart hold worthless proofs. 0: no mints and
        no Lightning endpoint.
      '';
    };

    mintBind = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "::";
      description = ''
        IP address the mints listen on (`--mint-bind`, no port; `::` for
        IPv4 and IPv6). Clients name a mint by a URL of this host
        (`http://HOST:PORT`), and every wallet and swarm node must spell a
        mint's URL the same way, since tokens carry it.
      '';
    };

    mintPort = mkOption {
      type = types.port;
      default = 3338;
      description = ''
        Port of the first mint (`--mint-port`); mint i listens on
        `mintPort + i - 1`: 3338, 3339, … by default. 0: ephemeral ports,
        printed as `MINT_i=URL` in the journal.
      '';
    };

    meltFeeSat = mkOption {
      type = types.ints.unsigned;
      default = 0;
      example = 1;
      description = ''
        Lightning routing fee, in sat, that every mint pays (and charges
        as its fee reserve) for each melt (`--melt-fee-sat`): the cost of
        a swap from one mint to another.
      '';
    };

    lightningBind = bindOption "127.0.0.1:8090" ''
      the Lightning endpoint (`--lightning-bind`), with `mints` > 0 only:
      `POST /pay {"bolt11": "…"}` pays any invoice of the mints from
      outside their network (to fund a test wallet after
      `atoll wallet invoice`), and `POST /latency {"ms": N}` delays every
      mint request by N ms'';

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the TCP ports of every listener that runs: the relays, the
        origin, the mints and the Lightning endpoint. All of them need a
        fixed port then.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions =
      [
        {
          assertion = cfg.package != null;
          message = "services.atoll.devnet.package is required: the flake's packages.<system>.atoll-devnet (crate atoll-testkit), which pkgs.atoll does not contain.";
        }
        {
          assertion = lastMintPort <= 65535 || cfg.mintPort == 0;
          message = "services.atoll.devnet: mintPort ${toString cfg.mintPort} with ${toString cfg.mints} mints goes past port 65535.";
        }
        {
          assertion = cfg.openFirewall && lightning -> cfg.mintPort != 0;
          message = "services.atoll.devnet.openFirewall needs a fixed mintPort (not 0).";
        }
      ]
      ++ concatMap (l: [
        {
          assertion = l.port != null && l.port <= 65535;
          message = "services.atoll.devnet.${l.name} must be \"ADDRESS:PORT\" with a port up to 65535; it is ${builtins.toJSON l.address}.";
        }
        {
          assertion = cfg.openFirewall -> l.port != 0;
          message = "services.atoll.devnet.openFirewall needs a fixed port in ${l.name}; it is ${builtins.toJSON l.address}.";
        }
      ])
      withPorts;

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall (lib.filter (port: port != null && port != 0 && port <= 65535) ports);

    systemd.services.${unit} = {
      description = "Atoll devnet (test infrastructure: relays, origin, test mints)";
      wantedBy = ["multi-user.target"];
      wants = ["network-online.target"];
      after = ["network-online.target"];

      # Type=notify with the watchdog, as every Atoll daemon: atoll-devnet
      # sends READY=1 only once every listener is bound (after it printed
      # its NAME=URL lines, which go to the journal), and WATCHDOG=1 pings.
      # A restart, on failure, makes new mints: earlier ecash is lost.
      serviceConfig =
        atoll.serviceConfig {network = true;}
        // {
          # Without a package the assertion above says what to set.
          ExecStart = mkIf (cfg.package != null) (lib.escapeShellArgs ([(lib.getExe' cfg.package program)] ++ args));
          # User (no state): atoll.serviceModule above.
        }
        // lib.optionalAttrs needsBindCapability {
          # The baseline's empty bounding set, widened by exactly this.
          AmbientCapabilities = ["CAP_NET_BIND_SERVICE"];
          CapabilityBoundingSet = ["CAP_NET_BIND_SERVICE"];
        };
    };
  };
}
