# What every Atoll service module shares, so that no module hand-rolls it:
# the systemd hardening baseline (after nix-bitcoin's pkgs/lib.nix), the
# sd-notify/watchdog settings, RFC 42 TOML settings checked at build time by
# the daemon itself, and secret-file options kept out of the Nix store.
#
#   atoll = import ./lib.nix {inherit lib pkgs;};
#   systemd.services.atoll-swarm.serviceConfig =
#     atoll.serviceConfig {network = true;} // {ExecStart = ...; DynamicUser = true;};
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
