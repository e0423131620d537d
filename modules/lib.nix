# What every Atoll service module shares, so that no module hand-rolls it:
# the systemd hardening baseline (after nix-bitcoin's pkgs/lib.nix), the
# sd-notify/watchdog settings, the service's identity, state, resource limits
# and local API socket (serviceModule), RFC 42 TOML settings checked at build
# time by the daemon itself, and secret-file options kept out of the Nix store.
#
# A service module (modules/swarm.nix is the fullest example):
#
#   {config, lib, pkgs, ...}: let
#     atoll = import ./lib.nix {inherit lib pkgs;};
#   in {
#     imports = [(atoll.serviceModule {
#       name = "films";               # services.atoll.films, unit atoll-films
#       user = "atoll-filmsd";        # its DynamicUser= name
#       memoryMax = "1G";             # defaults of the memoryMax/tasksMax options
#       tasksMax = 512;
#       api = {                       # a local API socket, for a group's members
#         socketFile = "filmsd.sock"; # the daemon's default, in /run/atoll-films
#         groupDescription = "Group that may use the film API socket.";
#       };
#     })];
#     options.services.atoll.films = {enable = ...; package = ...; settings = ...;};
#     config = lib.mkIf config.services.atoll.films.enable {
#       systemd.services.atoll-films.serviceConfig =
#         atoll.serviceConfig {network = false;} // {ExecStart = ...;};
#     };
#   }
{
  lib,
  pkgs,
}: let
  inherit (lib) mkOption types;
in rec {
  # RestrictAddressFamilies: unix sockets only, or also IP and netlink
  # (iroh watches network interfaces over netlink).
  addressFamilies = network:
    ["AF_UNIX"] ++ lib.optionals network ["AF_INET" "AF_INET6" "AF_NETLINK"];

  # Sandboxing for any daemon, whether it runs with DynamicUser= or a
  # dedicated User=; StateDirectory=, RuntimeDirectory= and the user are the
  # module's to set. Relax a setting per service with `//`, never here.
  hardening = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    SystemCallFilter = ["@system-service" "~@privileged" "~@resources"];
    SystemCallArchitectures = "native";
    # A filtered call fails with EPERM, which libraries that probe optional
    # calls (setrlimit, sched_setaffinity) handle, instead of killing the daemon.
    SystemCallErrorNumber = "EPERM";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RemoveIPC = true;
    UMask = "0077";
  };

  # Every daemon reports READY=1 and WATCHDOG=1 itself (sd-notify); systemd
  # restarts it when it fails or stops pinging.
  notify = {watchdogSec ? "30s"}: {
    Type = "notify";
    NotifyAccess = "main";
    WatchdogSec = watchdogSec;
    Restart = "on-failure";
    RestartSec = "5s";
  };

  # The whole baseline for one daemon's serviceConfig. `network = false`
  # also gives it a private network namespace: unix sockets only.
  serviceConfig = {
    network,
    watchdogSec ? "30s",
  }:
    hardening
    // notify {inherit watchdogSec;}
    // {
      RestrictAddressFamilies = addressFamilies network;
      PrivateNetwork = !network;
    };

  # A NixOS module with what every service module has in common, given as
  # `imports = [(atoll.serviceModule {...})]` (see the top of this file):
  #
  # - identity and state: DynamicUser= as `user`, and (with `state`, the
  #   default) StateDirectory=atoll-<name> at /var/lib/private/atoll-<name>,
  #   mode 0700, the daemon's alone (/var/lib/atoll-<name> links there);
  # - resource limits: the options `memoryMax` and `tasksMax` (defaults
  #   given here), written to MemoryMax= and TasksMax=;
  # - with `api`: a local API socket that the members of a static group may
  #   use. The options `group` (default "atoll-<name>", created if missing;
  #   it must differ from `user`: systemd refuses to start a dynamic user
  #   whose name an existing group has) and `socket` (read-only: the
  #   daemon's `settings.api.socket`, or /run/atoll-<name>/<socketFile>);
  #   Group=, RuntimeDirectory=atoll-<name> (0750: the daemon makes the
  #   socket 0660 itself, so the baseline UMask=0077 stays) and
  #   ATOLL_<NAME>_SOCKET for every login (the CLI reads it).
  #
  # Everything else (ExecStart=, the hardening baseline from serviceConfig
  # below, ordering) stays in the service's module.
  serviceModule = {
    name,
    user,
    memoryMax,
    tasksMax,
    state ? true,
    api ? null,
  }: {config, ...}: let
    cfg = config.services.atoll.${name};
    unit = "atoll-${name}";
    option = "services.atoll.${name}";
    withApi = api != null;
    defaultSocket = "/run/${unit}/${api.socketFile}";
    envVar = "ATOLL_${lib.toUpper name}_SOCKET";
  in {
    options.services.atoll.${name} =
      {
        memoryMax = mkOption {
          type = types.nullOr (types.either types.ints.positive (types.strMatching "[0-9]+[KMGT]?|[0-9]+(\\.[0-9]+)?%|infinity"));
          default = memoryMax;
          example = "4G";
          description = ''
            The most memory the service may use (systemd MemoryMax=: bytes,
            with K, M, G or T, a percentage of RAM, or "infinity"); at the
            limit the kernel reclaims its caches, then kills the daemon,
            which systemd restarts. `null`: no limit.
          '';
        };
        tasksMax = mkOption {
          type = types.nullOr (types.either types.ints.positive (types.enum ["infinity"]));
          default = tasksMax;
          example = 2048;
          description = ''
            The most threads and processes the service may run (systemd
            TasksMax=); past it, thread creation fails. Tokio's blocking
            pool alone may use up to 512 threads. `null`: systemd's default
            (DefaultTasksMax=).
          '';
        };
      }
      // lib.optionalAttrs withApi {
        group = mkOption {
          type = types.str;
          default = unit;
          example = api.groupExample or "users";
          description = ''
            ${api.groupDescription} The socket is mode 0660 in a 0750
            runtime directory, both in this group; it is created if it does
            not exist, and the daemon runs with it as its group (and a
            dynamic user).
          '';
        };
        socket = mkOption {
          type = types.str;
          readOnly = true;
          default = cfg.settings.api.socket or defaultSocket;
          defaultText = lib.literalExpression ''
            config.${option}.settings.api.socket or "${defaultSocket}"
          '';
          description = ''
            Path of the local API socket, for other modules and clients to
            refer to (the CLI reads it from `${envVar}`, set for every
            login).${api.socketDescription or ""}
          '';
        };
      };

    # `api` is known before any config is: a plain list, not mkIf, since
    # without it cfg.group does not exist.
    config = lib.mkIf cfg.enable (lib.mkMerge ([
        {
          systemd.services.${unit}.serviceConfig =
            {
              DynamicUser = true;
              User = user;
            }
            // lib.optionalAttrs state {
              StateDirectory = unit;
              StateDirectoryMode = "0700";
            }
            // {
              MemoryMax = lib.mkIf (cfg.memoryMax != null) cfg.memoryMax;
              TasksMax = lib.mkIf (cfg.tasksMax != null) cfg.tasksMax;
            };
        }
      ]
      ++ lib.optional withApi {
        assertions = [
          {
            assertion = cfg.group != user;
            message = "${option}.group must not be \"${user}\", the name of the service's dynamic user.";
          }
        ];
        users.groups.${cfg.group} = {};
        environment.variables.${envVar} = cfg.socket;
        systemd.services.${unit}.serviceConfig = {
          Group = cfg.group;
          RuntimeDirectory = unit;
          RuntimeDirectoryMode = "0750";
        };
      }));
  };

  settingsFormat = pkgs.formats.toml {};

  # RFC 42 `settings`: the daemon's TOML config as a Nix attrset, rendered by
  # settingsFormat, never written by hand.
  mkSettingsOption = {
    program,
    example ? {},
  }:
    mkOption {
      inherit (settingsFormat) type;
      default = {};
      inherit example;
      description = ''
        Configuration of {command}`${program}`, written to the TOML file it
        reads with `--config`; see the config reference in docs/. Secrets do
        not belong here: use the module's `*File` options.
      '';
    };

  # The config file for `settings`, checked when the system is built by the
  # daemon's own parser (`<program> --check-config --config <file>`), so a bad
  # value fails the build, not the boot. `--check-config` must not need the
  # secrets or the state directory: where it opens files that exist only at
  # run time, `checkEnv` points it at stand-ins with the daemon's environment
  # overrides (e.g. `{ATOLL_RELAYD_TLS__KEY_FILE = "/dev/null";}`); the file
  # itself is unchanged. Skipped when cross-compiling.
  mkConfigFile = {
    package,
    program,
    settings,
    check ? true,
    checkEnv ? {},
  }: let
    file = settingsFormat.generate "${program}.toml" settings;
    canRun = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
  in
    if check && canRun
    then
      pkgs.runCommand "${program}-checked.toml" ({preferLocalBuild = true;} // checkEnv) ''
        ${lib.getExe' package program} --check-config --config ${file}
        cp ${file} $out
      ''
    else file;

  # The port of a socket address string ("0.0.0.0:4919", "[::]:443"), or
  # null when there is none to read.
  portOf = address: let
    m = builtins.match ".*:([0-9]+)" (toString address);
  in
    if m == null
    then null
    else lib.toInt (builtins.head m);

  # A secret is given as a file outside the Nix store (which every local user
  # can read) and handed to the daemon with LoadCredential=. The type refuses
  # store paths and Nix path values (those are copied to the store when used).
  mkSecretFileOption = description:
    mkOption {
      type = types.nullOr types.externalPath;
      default = null;
      example = "/run/keys/atoll-secret";
      inherit description;
    };

  # True for a path in the Nix store, or a Nix path value that would be copied
  # there when used. toString never copies.
  inStore = path:
    builtins.isPath path || lib.hasPrefix "${builtins.storeDir}/" (toString path);

  # For config.assertions, wherever a secret path is not typed by
  # mkSecretFileOption (e.g. inside settings): `assertSecretNotInStore
  # "services.atoll.wallet.settings.wallet.seed_file"
  # (cfg.settings.wallet.seed_file or null)` (modules/wallet.nix).
  assertSecretNotInStore = option: path: {
    assertion = path == null || !(inStore path);
    message = "${option} = ${toString path}: secrets must not be in the Nix store, which every local user can read; give a path outside it (e.g. under /run/keys or /var/lib).";
  };
}
