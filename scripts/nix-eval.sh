#!/usr/bin/env bash
# The team's whole-flake evaluation (shared/tools/nix-eval.sh) with its
# embedded checker flake brought up to date with this tree's modules:
# services.atoll.devnet is imported from nixosModules.devnet (it left
# nixosModules.default), payment.charge replaces payment.enable, relay
# configurations that must evaluate set settings.server.public_url, and
# more configurations that must be refused. Only the checker flake differs
# (`diff ../shared/tools/nix-eval.sh scripts/nix-eval.sh`); docs/nixos.md
# says how to run it.
# eval.sh PROJECT_CHECKOUT WORK_DIR: eval-only checks of the Atoll flake's Nix layer
# (NixOS hosts, VM tests, modules, units) without network: see usage below.
set -uo pipefail

write_helpers() {
  mkdir -p "$WORK/helpers"
  cat > "$WORK/helpers/checker-flake.nix" <<'EOF_HELPER_CHECKER_FLAKE_NIX'
# Eval-only checker for the Atoll flake's NixOS layer. Every attribute under
# `report` is evaluated on its own (nix eval --json), so that one failure does
# not hide the others. nixpkgs and crane are overridden on the command line.
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs";
    crane.url = "github:ipetkov/crane";
    atoll.url = "path:/src/atoll";
    atoll.inputs.nixpkgs.follows = "nixpkgs";
    atoll.inputs.crane.follows = "crane";
  };

  outputs = {nixpkgs, atoll, ...}: let
    inherit (nixpkgs) lib;
    system = "x86_64-linux";
    pkgs = nixpkgs.legacyPackages.${system};
    host = atoll.nixosConfigurations.atoll-node;
    vm = atoll.checks.${system};
    devnetPkg = atoll.packages.${system}.atoll-devnet;
    owner = "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d";

    # A stand-in machine for the synthetic configurations below.
    base = {
      nixpkgs.hostPlatform = system;
      boot.loader.grub.enable = false;
      fileSystems."/" = {
        device = "/dev/vda";
        fsType = "ext4";
      };
      system.stateVersion = "26.05";
    };
    mkSys = modules: lib.nixosSystem {modules = [base] ++ modules;};
    withDefault = cfg: mkSys [atoll.nixosModules.default cfg];
    # services.atoll.devnet is test infrastructure, outside nixosModules.default.
    withDevnet = cfg: mkSys [atoll.nixosModules.default atoll.nixosModules.devnet cfg];

    failedAssertions = sys: map (a: a.message) (lib.filter (a: !a.assertion) sys.config.assertions);
    summary = sys: {
      warnings = sys.config.warnings;
      failedAssertions = failedAssertions sys;
    };
    toplevel = sys: sys.config.system.build.toplevel.drvPath;
    unit = sys: name: sys.config.systemd.units."${name}.service".text;
    atollUnits = sys:
      lib.filterAttrs (n: _: lib.hasPrefix "atoll-" n || n == "spender.service" || n == "outsider.service")
      (lib.mapAttrs (_: u: u.text) sys.config.systemd.units);
    settings = sys:
      lib.mapAttrs (_: s: s.settings) (lib.filterAttrs (_: s: s.enable or false && s ? settings) sys.config.services.atoll);
    firewall = sys: {inherit (sys.config.networking.firewall) enable allowedTCPPorts allowedUDPPorts;};
    sysReport = sys: {
      inherit (summary sys) warnings failedAssertions;
      units = atollUnits sys;
      settings = settings sys;
      firewall = firewall sys;
      env = lib.filterAttrs (n: _: lib.hasPrefix "ATOLL_" n) sys.config.environment.variables;
      groups = lib.attrNames (lib.filterAttrs (n: _: lib.hasPrefix "atoll" n) sys.config.users.groups);
    };

    # Every service on, with the fewest options the modules require.
    allOn = withDevnet {
      services.atoll.swarm = {
        enable = true;
        openFirewall = true;
        payment = {
          charge = true;
          priceSatPerMb = 2;
          acceptedMints = ["https://mint.example.org"];
        };
      };
      services.atoll.wallet = {
        enable = true;
        settings.wallet.trusted_mints = ["https://mint.example.org"];
      };
      services.atoll.relay = {
        enable = true;
        inherit owner;
        settings.server.public_url = "https://relay.example.org";
      };
      services.atoll.devnet = {
        enable = true;
        package = devnetPkg;
        mints = 2;
        originDir = "/srv/origin";
      };
    };

    # The relay as docs/nixos.md shows it in production: TLS, port 443, QUIC.
    relayTls = withDefault {
      services.atoll.relay = {
        enable = true;
        inherit owner;
        openFirewall = true;
        settings.server = {
          bind = "[::]:443";
          public_url = "https://relay.example.org";
        };
        settings.quic.address_discovery = true;
        tls = {
          certificateFile = "/var/lib/acme/relay.example.org/fullchain.pem";
          keyFile = "/var/lib/acme/relay.example.org/key.pem";
        };
      };
    };

    # One module alone (nixosModules.<name>), as docs/nixos.md allows.
    alone = name: cfg: mkSys [atoll.nixosModules.${name} cfg];

    # Configurations that must fail, each with the message a user would see.
    bad = {
      swarm-port-out-of-range = withDefault {
        services.atoll.swarm = {
          enable = true;
          openFirewall = true;
          settings.node.bind = "0.0.0.0:70000";
        };
      };
      swarm-port-out-of-range-no-firewall = withDefault {
        services.atoll.swarm = {
          enable = true;
          settings.node.bind = "0.0.0.0:70000";
        };
      };
      swarm-port0-firewall = withDefault {
        services.atoll.swarm = {
          enable = true;
          openFirewall = true;
          settings.node.bind = "0.0.0.0:0";
        };
      };
      swarm-group-is-user = withDefault {
        services.atoll.swarm = {
          enable = true;
          group = "atoll-swarmd";
        };
      };
      swarm-payment-no-wallet = withDefault {
        services.atoll.swarm = {
          enable = true;
          payment.maxPriceSatPerMb = 1;
        };
      };
      swarm-payment-module-alone = alone "swarm" {
        services.atoll.swarm = {
          enable = true;
          payment.maxPriceSatPerMb = 1;
        };
      };
      # the option that meant "use the wallet" (the daemon's payment.enabled means "charge")
      # the renamed payment.enable (now charge) set against charge itself
      swarm-payment-enable-against-charge = withDefault {
        services.atoll.wallet.enable = true;
        services.atoll.swarm = {
          enable = true;
          payment = {
            enable = true;
            charge = false;
            maxPriceSatPerMb = 1;
          };
        };
      };
      relay-port-out-of-range = withDefault {
        services.atoll.relay = {
          enable = true;
          inherit owner;
          openFirewall = true;
          settings.server = {
            bind = "0.0.0.0:70000";
            public_url = "https://relay.example.org";
            insecure_http = true;
          };
        };
      };
      devnet-port-out-of-range = withDevnet {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
          openFirewall = true;
          irohBind = "[::]:70000";
        };
      };
      swarm-charge-no-price = withDefault {
        services.atoll.wallet.enable = true;
        services.atoll.swarm = {
          enable = true;
          payment.charge = true;
        };
      };
      swarm-memory-max-bad = withDefault {
        services.atoll.swarm = {
          enable = true;
          memoryMax = "lots";
        };
      };
      swarm-unknown-settings-key = withDefault {
        services.atoll.swarm = {
          enable = true;
          settings.bogus_section.bogus_key = 1;
        };
      };
      swarm-null-in-settings = withDefault {
        services.atoll.swarm = {
          enable = true;
          settings.node.relays = null;
        };
      };
      swarm-unknown-option = withDefault {
        services.atoll.swarm = {
          enable = true;
          bogus = 1;
        };
      };
      swarm-enable-not-bool = withDefault {services.atoll.swarm.enable = "yes";};
      swarm-socket-readonly-set = withDefault {
        services.atoll.swarm = {
          enable = true;
          socket = "/tmp/x.sock";
        };
      };
      swarm-negative-price = withDefault {
        services.atoll.wallet.enable = true;
        services.atoll.swarm = {
          enable = true;
          payment = {
            charge = true;
            priceSatPerMb = 0;
            acceptedMints = ["https://m"];
          };
        };
      };
      relay-no-owner = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
        };
      };
      # issue 13: evaluated, then failed at build time in --check-config
      relay-no-public-url = withDefault {
        services.atoll.relay = {
          enable = true;
          inherit owner;
        };
      };
      relay-plain-http-off-loopback = withDefault {
        services.atoll.relay = {
          enable = true;
          inherit owner;
          settings.server = {
            bind = "0.0.0.0:3340";
            public_url = "http://relay.example.org:3340";
          };
        };
      };
      relay-quic-no-tls = withDefault {
        services.atoll.relay = {
          enable = true;
          inherit owner;
          settings.server.public_url = "https://relay.example.org";
          settings.quic.address_discovery = true;
        };
      };
      relay-bad-owner = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          owner = "npub1notakey";
        };
      };
      relay-tls-half = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          tls.certificateFile = "/var/lib/acme/x/fullchain.pem";
        };
      };
      relay-tls-key-in-store-string = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          tls.certificateFile = "/var/lib/acme/x/fullchain.pem";
          tls.keyFile = "/nix/store/00000000000000000000000000000000-key.pem";
        };
      };
      relay-tls-key-nix-path = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          tls.certificateFile = "/var/lib/acme/x/fullchain.pem";
          tls.keyFile = ./flake.nix;
        };
      };
      relay-settings-key-in-store = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          settings.tls = {
            cert_file = "/var/lib/x/cert.pem";
            key_file = "/nix/store/00000000000000000000000000000000-key.pem";
          };
        };
      };
      relay-firewall-loopback = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          openFirewall = true;
        };
      };
      wallet-seed-in-store = withDefault {
        services.atoll.wallet = {
          enable = true;
          settings.wallet.seed_file = "/nix/store/00000000000000000000000000000000-seed";
        };
      };
      wallet-group-is-user = withDefault {
        services.atoll.wallet = {
          enable = true;
          group = "atoll-walletd";
        };
      };
      devnet-no-package = withDevnet {services.atoll.devnet.enable = true;};
      # test infrastructure is not part of nixosModules.default
      devnet-in-default = withDefault {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
        };
      };
      devnet-too-many-mints = withDevnet {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
          mints = 101;
        };
      };
      devnet-mint-ports-overflow = withDevnet {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
          mints = 2;
          mintPort = 65535;
        };
      };
      devnet-firewall-ephemeral = withDevnet {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
          openFirewall = true;
          irohBind = "127.0.0.1:0";
        };
      };
      # docs/nixos.md: a read-only pkgs refuses the modules' overlay
      readonly-pkgs = mkSys [
        ({modulesPath, ...}: {imports = ["${modulesPath}/misc/nixpkgs/read-only.nix"]; nixpkgs.pkgs = pkgs;})
        atoll.nixosModules.default
        {services.atoll.swarm.enable = true;}
      ];
      devnet-bind-no-port = withDevnet {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
          nostrBind = "localhost";
        };
      };
    };

    # Configurations that must evaluate.
    good = {
      inherit allOn relayTls;
      relay-members-in-store = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          membersFile = pkgs.writeText "members" "";
        };
      };
      relay-no-members-file = withDefault {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
          membersFile = null;
        };
      };
      devnet-privileged-port = withDevnet {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
          irohBind = "[::]:80";
          openFirewall = true;
        };
      };
      swarm-alone = alone "swarm" {services.atoll.swarm.enable = true;};
      relay-alone = alone "relay" {
        services.atoll.relay = {
          enable = true;
          settings.server.public_url = "https://relay.example.org";
          inherit owner;
        };
      };
      wallet-alone = alone "wallet" {services.atoll.wallet.enable = true;};
      devnet-alone = alone "devnet" {
        services.atoll.devnet = {
          enable = true;
          package = devnetPkg;
        };
      };
      all-off = withDefault {};
      # limits off: no MemoryMax=/TasksMax= lines
      swarm-no-limits = withDefault {
        services.atoll.swarm = {
          enable = true;
          memoryMax = null;
          tasksMax = null;
        };
      };
      # buy only: [payment] without enabled, the wallet's group joined
      swarm-buy-only = withDefault {
        services.atoll.wallet.enable = true;
        services.atoll.swarm = {
          enable = true;
          payment.maxPriceSatPerMb = 2;
        };
      };
      # an aarch64 machine: the overlay picks packages.aarch64-linux
      aarch64-all = lib.nixosSystem {
        modules = [
          (base // {nixpkgs.hostPlatform = "aarch64-linux";})
          atoll.nixosModules.default
          {
            services.atoll.swarm.enable = true;
            services.atoll.wallet.enable = true;
            services.atoll.relay = {
              enable = true;
              inherit owner;
              settings.server.public_url = "https://relay.example.org";
            };
          }
        ];
      };
      # cross: built on x86_64 for aarch64 (the --check-config step is skipped)
      cross-aarch64 = lib.nixosSystem {
        modules = [
          (base // {nixpkgs.hostPlatform = "aarch64-linux"; nixpkgs.buildPlatform = system;})
          atoll.nixosModules.default
          {services.atoll.swarm.enable = true;}
        ];
      };
      # default and one service module together: the file imports must dedupe
      default-plus-swarm = mkSys [
        atoll.nixosModules.default
        atoll.nixosModules.swarm
        {services.atoll.swarm.enable = true;}
      ];
      # docs/nixos.md: the module files without the overlay, package named
      direct-import-no-overlay = mkSys [
        "${atoll}/modules/default.nix"
        {
          services.atoll.swarm = {
            enable = true;
            package = atoll.packages.${system}.atoll;
          };
        }
      ];
    };

    vmNodes = lib.mapAttrs (_: t: t.nodes) (lib.filterAttrs (n: _: lib.hasPrefix "vm-" n) vm);
  in {
    report = {
      host = sysReport host // {toplevel = toplevel host;};
      hostBuildVm = host.config.system.build.vm.drvPath;
      vmDrivers = lib.mapAttrs (_: t: t.driver.drvPath) (lib.filterAttrs (n: _: lib.hasPrefix "vm-" n) vm);
      testScripts = lib.mapAttrs (_: t: {
        script = t.config.testScriptString;
        vms = lib.attrNames t.config.driverConfiguration.vms;
        vlans = t.config.driverConfiguration.vlans;
      }) (lib.filterAttrs (n: _: lib.hasPrefix "vm-" n) vm);
      vmTests = lib.mapAttrs (_: t: t.drvPath) (lib.filterAttrs (n: _: lib.hasPrefix "vm-" n) vm);
      vmNodes = lib.mapAttrs (_: nodes: lib.mapAttrs (_: n: sysReport {config = n;}) nodes) vmNodes;
      # the node VMs' own system derivations
      vmNodeToplevels = lib.mapAttrs (_: nodes: lib.mapAttrs (_: n: n.system.build.toplevel.drvPath) nodes) vmNodes;
      good = lib.mapAttrs (_: sys: sysReport sys // {toplevel = toplevel sys;}) good;
      badToplevel = lib.mapAttrs (_: toplevel) bad;
      badSummary = lib.mapAttrs (_: summary) bad;
      packages = lib.mapAttrs (_: p: p.drvPath) atoll.packages.${system};
      packagesAarch64 = lib.mapAttrs (_: p: p.drvPath) atoll.packages.aarch64-linux;
      checks = lib.mapAttrs (_: p: p.drvPath) (lib.filterAttrs (n: _: !lib.hasPrefix "vm-" n) vm);
      devShell = atoll.devShells.${system}.default.drvPath;
      apps = lib.mapAttrs (_: a: a.program) atoll.apps.${system};
      formatter = atoll.formatter.${system}.drvPath;
      overlayAtoll = (pkgs.extend atoll.overlays.default).atoll.drvPath;
      optionNames = map (o: o.name) (lib.filter (o: o.visible or true && !(o.internal or false)) (lib.optionAttrSetToDocList allOn.options.services.atoll));
      optionsDoc = (pkgs.nixosOptionsDoc {options = allOn.options.services.atoll;}).optionsNix;
      optionsMissingDescription = lib.attrNames (lib.filterAttrs (_: o: (o.description or null) == null || o.description == "") (pkgs.nixosOptionsDoc {options = allOn.options.services.atoll;}).optionsNix);
      # the settings as JSON, for rendering the TOML files outside Nix
      configFiles = let
        files = sys: lib.mapAttrs (_: s: s.settings) (lib.filterAttrs (_: s: s.enable or false && s ? settings) sys.config.services.atoll);
      in {
        host = files host;
        good = lib.mapAttrs (_: files) good;
        vm = lib.mapAttrs (_: nodes: lib.mapAttrs (_: n: files {config = n;}) nodes) vmNodes;
      };
    };
  };
}
EOF_HELPER_CHECKER_FLAKE_NIX
  cat > "$WORK/helpers/export-tree.py" <<'EOF_HELPER_EXPORT_TREE_PY'
#!/usr/bin/env python3
"""Export a git tree (bare repo) to a directory, skipping objects absent from the snapshot."""
import os, subprocess, sys
gitdir, rev, dest = sys.argv[1:4]
os.makedirs(dest, exist_ok=True)
ls = subprocess.run(["git", "--git-dir", gitdir, "ls-tree", "-r", "-z", "--full-tree", rev],
                    check=True, capture_output=True).stdout.split(b"\0")
entries = []
for e in ls:
    if not e: continue
    meta, path = e.split(b"\t", 1)
    mode, typ, sha = meta.split()
    if typ != b"blob": continue
    entries.append((mode, sha, path))
p = subprocess.Popen(["git", "--git-dir", gitdir, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
missing = []
for mode, sha, path in entries:
    p.stdin.write(sha + b"\n"); p.stdin.flush()
    header = p.stdout.readline()
    parts = header.split()
    if len(parts) < 3 or parts[1] == b"missing":
        missing.append(path.decode()); continue
    size = int(parts[2]); data = p.stdout.read(size); p.stdout.read(1)
    out = os.path.join(dest.encode(), path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if mode == b"120000":
        if os.path.lexists(out): os.unlink(out)
        os.symlink(data, out)
    else:
        with open(out, "wb") as f: f.write(data)
        if mode == b"100755": os.chmod(out, 0o755)
p.stdin.close(); p.wait()
with open(os.path.join(dest, ".export-missing"), "w") as f:
    f.write("\n".join(missing) + "\n")
print(f"exported {len(entries)-len(missing)} files, {len(missing)} missing", file=sys.stderr)
EOF_HELPER_EXPORT_TREE_PY
  cat > "$WORK/helpers/patch-nixpkgs.py" <<'EOF_HELPER_PATCH_NIXPKGS_PY'
#!/usr/bin/env python3
"""Checker-only stubs for a nixpkgs tree exported from a snapshot that lacks files >= 4 MiB."""
import os, re, sys
N = sys.argv[1]
def rd(p): return open(os.path.join(N, p)).read()
def wr(p, s):
    os.makedirs(os.path.dirname(os.path.join(N, p)), exist_ok=True)
    open(os.path.join(N, p), "w").write(s)
# 1. module-list: every commented-out entry back in (the slim snapshot's initial commit = upstream list, commented)
ml = "nixos/modules/module-list.nix"
wr(ml, re.sub(r"(?m)^(\s*)#\s*(\./)", r"\1\2", rd(ml)))
# 2. hackage-packages.nix (absent): empty set; shellcheck(-minimal) replaced by a trivial stand-in
hp = "pkgs/development/haskell-modules/hackage-packages.nix"
hackage_missing = not os.path.exists(os.path.join(N, hp))
if hackage_missing:
    wr(hp, "# checker stub: absent from the snapshot\n{ pkgs, lib, callPackage }:\nself: { }\n")
ap = "pkgs/top-level/all-packages.nix"; s = rd(ap)
stub = '''runCommand "shellcheck-stub-0.11.0" {
    # checker stub: hackage-packages.nix is absent from the snapshot
    passthru.compiler.bootstrapAvailable = true;
    passthru.unwrapped = { compiler.bootstrapAvailable = true; };
    meta.mainProgram = "shellcheck";
  } "mkdir -p $out/bin; printf '#!/bin/sh\\\\nexit 0\\\\n' > $out/bin/shellcheck; chmod +x $out/bin/shellcheck";'''
old_a = """  shellcheck = callPackage ../development/tools/shellcheck {
    inherit (__splicedPackages.haskellPackages) ShellCheck;
  };"""
old_b = "  shellcheck-minimal = haskell.lib.compose.justStaticExecutables shellcheck.unwrapped;"
if hackage_missing:
    if old_a in s: s = s.replace(old_a, "  shellcheck = " + stub)
    if old_b in s: s = s.replace(old_b, "  shellcheck-minimal = " + stub)
    wr(ap, s)
# 3. the other absent data files: empty but valid
for p, content in [("pkgs/desktops/gnome/extensions/extensions.json", "[]\n"),
                   ("pkgs/development/r-modules/cran-packages.json", "{}\n")]:
    if not os.path.exists(os.path.join(N, p)): wr(p, content)
print("patched", N)
EOF_HELPER_PATCH_NIXPKGS_PY
  cat > "$WORK/helpers/postprocess.py" <<'EOF_HELPER_POSTPROCESS_PY'
#!/usr/bin/env python3
"""Writes the Atoll units and rendered TOML configs out of the checker's JSON results."""
import json, os, sys, glob
import tomli_w
out, dest = sys.argv[1], sys.argv[2]
units_dir = os.path.join(dest, "units"); cfg_dir = os.path.join(dest, "configs")
os.makedirs(units_dir, exist_ok=True); os.makedirs(cfg_dir, exist_ok=True)
def load(name):
    p = os.path.join(out, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
def write_units(prefix, rep):
    for u, text in (rep or {}).get("units", {}).items():
        d = os.path.join(units_dir, prefix); os.makedirs(d, exist_ok=True)
        open(os.path.join(d, u), "w").write(text)
h = load("host")
if h: write_units("host-atoll-node", h)
vm = load("vmNodes") or {}
for t, nodes in vm.items():
    for n, rep in nodes.items(): write_units(f"{t}-{n}", rep)
for p in glob.glob(os.path.join(out, "good.*.json")):
    name = os.path.basename(p)[len("good."):-len(".json")]
    write_units(f"good-{name}", json.load(open(p)))
cf = load("configFiles") or {}
def write_cfg(prefix, files):
    for svc, settings in files.items():
        d = os.path.join(cfg_dir, prefix); os.makedirs(d, exist_ok=True)
        open(os.path.join(d, f"{svc}.toml"), "wb").write(tomli_w.dumps(settings).encode())
write_cfg("host-atoll-node", cf.get("host", {}))
for k, files in cf.get("good", {}).items():
    write_cfg(f"good-{k}", files)
for t, nodes in cf.get("vm", {}).items():
    for n, files in nodes.items(): write_cfg(f"{t}-{n}", files)
print("units:", sum(len(f) for _, _, f in os.walk(units_dir)), "configs:", sum(len(f) for _, _, f in os.walk(cfg_dir)))
EOF_HELPER_POSTPROCESS_PY
  cat > "$WORK/helpers/lint-testscripts.py" <<'EOF_HELPER_LINT_TESTSCRIPTS_PY'
#!/usr/bin/env python3
"""Rebuilds each VM test's testScriptWithTypes as nixos/lib/testing/driver.nix does and runs
ruff (--select F) and ty on it, as the driver derivation's build would."""
import json, os, re, subprocess, sys
scripts_json, nixpkgs, venv, workdir = sys.argv[1:5]
prepend = open(os.path.join(nixpkgs, "nixos/lib/test-script-prepend.py")).read()
def py_name(n):
    head = n[0] if re.match(r"[A-z_]", n[0]) else "_"
    return head + "".join(c if re.match(r"[A-z0-9_]", c) else "_" for c in n[1:])
env = dict(os.environ, PYTHONPATH=os.path.join(nixpkgs, "nixos/lib/test-driver/src"))
rc_all = 0
for test, t in json.load(open(scripts_json)).items():
    hints = [f"vlan{i} = create_fake_vlan()" for i in t["vlans"]]
    hints += [f"{py_name(n)} = create_fake_qemu_machine()" for n in t["vms"]]
    text = prepend + " ".join(hints) + "\n" + t["script"]   # echo "${toString typeHints}": newlines kept
    text = prepend + "\n".join(hints) + "\n" + t["script"]
    path = os.path.join(workdir, f"{test}.testScriptWithTypes.py")
    open(path, "w").write(text)
    for tool, args in [("ruff", ["check", "--no-cache", "--select", "F", path]),
                       ("ty", ["check", "--python", os.path.join(venv), "--extra-search-path", env["PYTHONPATH"], path])]:
        p = subprocess.run([os.path.join(venv, "bin", tool)] + args, capture_output=True, text=True, env=env, cwd=workdir)
        out = (p.stdout + p.stderr).strip()
        print(f"== {test} {tool}: rc={p.returncode}")
        print("\n".join(out.splitlines()[-25:]))
        rc_all |= p.returncode
sys.exit(rc_all)
EOF_HELPER_LINT_TESTSCRIPTS_PY
  cat > "$WORK/helpers/ck" <<'EOF_HELPER_CK'
#!/bin/bash
# ck ATTR [nix eval args]: report.ATTR of the checker flake as JSON, offline, inputs overridden
set -o pipefail
a="$1"; shift
nix eval --offline --json "path:/src/checker#report.$a" "$@" \
  --override-input nixpkgs "path:$(cat /src/nixpkgs.storepath)" \
  --override-input crane "path:$(cat /src/crane.storepath)" \
  --override-input atoll path:/src/atoll 2>&1 | { grep -v "not writing modified lock\|^• Updated input\|^• Added input\|^    '\|^  → '\|^    follows"; true; }
EOF_HELPER_CK
  cat > "$WORK/helpers/nixe" <<'EOF_HELPER_NIXE'
#!/bin/bash
# nixe ARGS: nix on the project flake, offline, nixpkgs and crane overridden by the store copies
set -o pipefail
nix "$@" --offline --override-input nixpkgs "path:$(cat /src/nixpkgs.storepath)" --override-input crane "path:$(cat /src/crane.storepath)" 2>&1 \
  | { grep -v "not writing modified lock\|^• Updated input\|^    '\|^  → '"; true; }
EOF_HELPER_NIXE
  cat > "$WORK/helpers/run-checks" <<'EOF_HELPER_RUN_CHECKS'
#!/bin/bash
# run-checks [top] [sets]: evaluates every report.* attribute of /src/checker on
# its own into /src/out (NAME.json, or NAME.err with the error).
out=/src/out; mkdir -p $out; cd /src
msg() { # the final error message of an .err file (after the last "error:")
  awk '/^ *error:/{buf=""; p=1} p{buf=buf"\n"$0} END{print buf}' "$1" | grep -v '^\s*$' | head -4 | sed 's/^ *//' | tr '\n' ' ' | cut -c1-400
}
one() { # name attr
  local name="$1" attr="$2" t0=$(date +%s)
  rm -f "$out/$name.json" "$out/$name.err"
  if ck "$attr" > "$out/$name.json.tmp"; then
    mv "$out/$name.json.tmp" "$out/$name.json"; echo "OK   $attr ($(( $(date +%s)-t0 ))s)"
  else
    mv "$out/$name.json.tmp" "$out/$name.err"; echo "FAIL $attr ($(( $(date +%s)-t0 ))s): $(msg "$out/$name.err")"
  fi
}
what="${*:-top sets}"
if [[ " $what " == *" top "* ]]; then
  for a in host hostBuildVm vmDrivers vmTests testScripts vmNodes vmNodeToplevels packages packagesAarch64 checks devShell apps formatter overlayAtoll optionNames optionsDoc optionsMissingDescription configFiles; do
    one "$a" "$a"
  done
fi
if [[ " $what " == *" sets "* ]]; then
  for set in good badToplevel badSummary; do
    for n in $(ck "$set" --apply builtins.attrNames | tr ',' ' ' | tr -d '[]"'); do
      one "$set.$n" "$set.$n"
    done
  done
fi
EOF_HELPER_RUN_CHECKS
  cat > "$WORK/helpers/score-units" <<'EOF_HELPER_SCORE_UNITS'
#!/bin/bash
# score-units DIR: systemd-analyze security --offline=true for every unit file under DIR
cd "$1"
for f in $(find . -name '*.service' | sort); do
  out=$(systemd-analyze security --offline=true "$f" 2>&1); rc=$?
  score=$(echo "$out" | grep -o 'Overall exposure level for [^:]*: .*' | sed 's/Overall exposure level for //')
  echo "${f#./} | ${score:-rc=$rc $(echo "$out" | tail -1)}"
  echo "$out" > "${f%.service}.security.txt"
done
EOF_HELPER_SCORE_UNITS
  cat > "$WORK/helpers/refresh-inputs" <<'EOF_HELPER_REFRESH_INPUTS'
#!/bin/sh
# copies the exported trees into the store once (a path: input is slow to re-copy)
set -e
nix store add-path --name source /src/nixpkgs > /src/nixpkgs.storepath
nix store add-path --name source /src/crane > /src/crane.storepath
EOF_HELPER_REFRESH_INPUTS
}
# ---------------------------------------------------------------------------
usage() {
  cat <<USAGE
usage: $0 PROJECT_CHECKOUT WORK_DIR

Eval-only checks of the Atoll flake's Nix layer (no builds, no network except
the Debian mirror for the chroot), in a Debian trixie chroot with Debian's nix:
flake show / flake check --no-build, every host's toplevel drvPath, the VM
tests' drivers, the Atoll units (with systemd-analyze security --offline), the
rendered TOML configs, option docs, and configurations that must fail.

Needs root, debootstrap, and two bare git snapshots of public repositories:
  NIXPKGS_GIT=<git dir of github:NixOS/nixpkgs at the pinned rev, or of
              github:neg-serg/nixpkgs-slim (its root commit is upstream nixpkgs
              with the module list commented out; it is restored here)>
  CRANE_GIT=<git dir of github:ipetkov/crane (the rev in flake.lock)>
Optional:
  DEBIAN_MIRROR=<url>      default: the first debian URI in /etc/apt/sources.list*
  ATOLL_BIN_DIR=<dir>      atoll-swarmd, atoll-relayd, atoll-walletd, atoll-devnet
                           built from the checkout: runs --check-config on the
                           rendered TOML (what the build's check step does)
  LINT_VENV=<dir>          a python venv with ruff and ty (and the test driver's
                           deps): lints the VM test scripts as the driver build does
Results: WORK_DIR/results/ (summary.txt, units/, configs/, out/).
USAGE
}
[ $# -eq 2 ] || { usage; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot)"; exit 2; }
SRC=$(realpath "$1"); WORK=$(realpath -m "$2")
[ -f "$SRC/flake.nix" ] && [ -f "$SRC/flake.lock" ] || { echo "$SRC has no flake.nix/flake.lock"; exit 2; }
CRANE_REV=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"]["crane"]["locked"]["rev"])' "$SRC/flake.lock")
NIXPKGS_REV=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"]["nixpkgs"]["locked"]["rev"])' "$SRC/flake.lock")
if [ -z "${NIXPKGS_GIT:-}" ] || [ -z "${CRANE_GIT:-}" ]; then
  echo "Set NIXPKGS_GIT and CRANE_GIT to bare git dirs of these repositories:"
  echo "  github:NixOS/nixpkgs     (rev $NIXPKGS_REV; 4.4 GB, too big to bring here as of writing)"
  echo "  github:neg-serg/nixpkgs-slim   (fallback, see below)"
  echo "  github:ipetkov/crane     (rev $CRANE_REV)"
  exit 2
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

C="$WORK/chroot"; R="$WORK/results"; mkdir -p "$WORK" "$R"
log() { echo "[$(date +%T)] $*"; }
cleanup() { mountpoint -q "$C/proc" && umount "$C/proc" || true; }
trap cleanup EXIT

# 1. the chroot: Debian trixie, nix-bin (2.26), systemd (for systemd-analyze only; never started)
if [ ! -x "$C/usr/bin/nix" ]; then
  MIRROR=${DEBIAN_MIRROR:-$(grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | awk '{print $2}' | head -1)}
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  log "debootstrap trixie from $MIRROR"
  [ -x "$C/usr/bin/apt-get" ] || debootstrap --variant=minbase trixie "$C" "$MIRROR" > "$WORK/debootstrap.log" 2>&1
  cp /etc/resolv.conf "$C/etc/resolv.conf"
  chroot "$C" /bin/bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends nix-bin systemd python3 python3-tomli-w ca-certificates' > "$WORK/chroot-apt.log" 2>&1
fi
mkdir -p "$C/etc/nix"
cat > "$C/etc/nix/nix.conf" <<NIXCONF
experimental-features = nix-command flakes
substituters =
build-users-group =
sandbox = false
flake-registry =
warn-dirty = false
NIXCONF
mountpoint -q "$C/proc" || mount -t proc proc "$C/proc"
[ -e "$C/dev/null" ] || { echo "$C/dev lacks device nodes"; exit 1; }

# 2. the sources: nixpkgs, crane, the checkout (tracked and untracked-not-ignored files)
mkdir -p "$C/src" "$C/usr/local/bin"
write_helpers
if [ ! -f "$C/src/nixpkgs/.export-done" ]; then
  rm -rf "$C/src/nixpkgs"
  if git --git-dir="$NIXPKGS_GIT" cat-file -e "$NIXPKGS_REV^{commit}" 2>/dev/null; then
    NREV=$NIXPKGS_REV; log "nixpkgs: the pinned rev $NREV"
  else
    NREV=$(git --git-dir="$NIXPKGS_GIT" rev-list --max-parents=0 HEAD -- | tail -1)
    log "nixpkgs: pinned rev $NIXPKGS_REV absent; root commit $NREV of $NIXPKGS_GIT (nixpkgs-slim: upstream as of its import)"
  fi
  python3 "$WORK/helpers/export-tree.py" "$NIXPKGS_GIT" "$NREV" "$C/src/nixpkgs"
  python3 "$WORK/helpers/patch-nixpkgs.py" "$C/src/nixpkgs"
  echo "$NREV" > "$C/src/nixpkgs/.export-done"
fi
rm -rf "$C/src/crane" && python3 "$WORK/helpers/export-tree.py" "$CRANE_GIT" "$CRANE_REV" "$C/src/crane"
rm -rf "$C/src/atoll" && mkdir -p "$C/src/atoll"
( cd "$SRC" && git ls-files -co --exclude-standard -z | tar --null -T - -cf - ) | tar -x -C "$C/src/atoll"
mkdir -p "$C/src/checker" && cp "$WORK/helpers/checker-flake.nix" "$C/src/checker/flake.nix" && rm -f "$C/src/checker/flake.lock"
cp "$WORK/helpers/postprocess.py" "$C/src/"
for h in ck nixe run-checks score-units refresh-inputs; do install -m755 "$WORK/helpers/$h" "$C/usr/local/bin/$h"; done
log "copying the inputs into the store"
chroot "$C" refresh-inputs

# 3. the checks
log "nix flake show"
chroot "$C" /bin/bash -c 'cd /src/atoll && nixe flake show path:/src/atoll' > "$R/flake-show.txt"; echo "rc=$?" >> "$R/flake-show.txt"
log "nix flake check --no-build --all-systems"
chroot "$C" /bin/bash -c 'cd /src/atoll && nixe flake check --no-build --all-systems path:/src/atoll' > "$R/flake-check.txt"; echo "rc=$?" >> "$R/flake-check.txt"
log "report.* (one nix eval each)"
rm -rf "$C/src/out"; chroot "$C" run-checks > "$R/run-checks.txt" 2>&1 || true
rm -rf "$C/src/render"; chroot "$C" python3 /src/postprocess.py /src/out /src/render
chroot "$C" score-units /src/render/units > "$R/security.txt" 2>&1 || true
rm -rf "$R/out" "$R/units" "$R/configs"; cp -r "$C/src/out" "$R/out"; cp -r "$C/src/render/units" "$C/src/render/configs" "$R/"

if [ -n "${ATOLL_BIN_DIR:-}" ]; then
  log "--check-config on the rendered TOML with $ATOLL_BIN_DIR"
  tmp=$(mktemp -d)
  for f in $(cd "$R/configs" && ls */*.toml); do
    svc=$(basename "$f" .toml); envs=()
    case $svc in
      swarm) bin=atoll-swarmd;; wallet) bin=atoll-walletd;;
      relay) bin=atoll-relayd; envs=(ATOLL_RELAYD_MEMBERSHIP__MEMBERS_FILE=/dev/null)
             grep -q '^\[tls\]' "$R/configs/$f" && envs+=(ATOLL_RELAYD_TLS__CERT_FILE=/dev/null ATOLL_RELAYD_TLS__KEY_FILE=/dev/null);;
      *) continue;;
    esac
    out=$(cd "$tmp" && env -i HOME=/homeless-shelter "${envs[@]}" timeout 30 "$ATOLL_BIN_DIR/$bin" --check-config --config "$R/configs/$f" 2>&1); rc=$?
    echo "rc=$rc $f: $(echo "$out" | tail -1 | cut -c1-200)"
  done > "$R/check-config.txt"
  rm -rf "$tmp"
  flags_used=$(grep -oE '"--[a-z-]+"' "$SRC/modules/devnet.nix" | tr -d '"' | sort -u)
  flags_have=$("$ATOLL_BIN_DIR/atoll-devnet" --help 2>&1 | grep -oE -- '--[a-z-]+' | sort -u)
  echo "devnet flags used by modules/devnet.nix but unknown to atoll-devnet: $(comm -23 <(echo "$flags_used") <(echo "$flags_have") | tr '\n' ' ')" >> "$R/check-config.txt"
fi
if [ -n "${LINT_VENV:-}" ] && [ -f "$R/out/testScripts.json" ]; then
  log "ruff/ty on the VM test scripts (as the driver derivation does)"
  mkdir -p "$R/testscripts"
  python3 "$WORK/helpers/lint-testscripts.py" "$R/out/testScripts.json" "$C/src/nixpkgs" "$LINT_VENV" "$R/testscripts" > "$R/testscripts/lint.txt" 2>&1 || true
fi

# 4. summary
{
  echo "nixpkgs: $(cat "$C/src/nixpkgs/.export-done") (flake.lock pins $NIXPKGS_REV); crane $CRANE_REV"
  echo "== flake show: $(tail -1 "$R/flake-show.txt")   flake check --no-build --all-systems: $(tail -1 "$R/flake-check.txt")"
  grep -E '^(warning|error)' "$R/flake-check.txt" | sort -u
  echo "== evaluations (FAIL under bad*.* is expected: those configurations must be refused; an OK there means the mistake passes evaluation)"
  cat "$R/run-checks.txt"
  echo "== systemd-analyze security --offline=true (systemd $(chroot "$C" systemd-analyze --version | head -1 | awk '{print $2}'))"
  cat "$R/security.txt"
  [ -f "$R/check-config.txt" ] && { echo "== --check-config on the rendered configs"; cat "$R/check-config.txt"; }
  [ -f "$R/testscripts/lint.txt" ] && { echo "== VM test scripts: ruff --select F / ty check"; grep -E '^(== |error|Found|All checks)' "$R/testscripts/lint.txt"; }
} > "$R/summary.txt"
cat "$R/summary.txt"

