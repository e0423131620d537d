# Scenario 1, Swarm (checks.x86_64-linux.vm-swarm), after nixpkgs'
# nixos/tests/bittorrent.nix: four swarm nodes, a relay node running an iroh
# relay and a Nostr relay (atoll-devnet), and a plain HTTP origin. a and b
# drop each other's packets, so b can fetch from a only through the relay;
# c and d reach everyone directly. Every node imports nixosModules.default
# (./nix/vm-tests.nix) and runs services.atoll.swarm as a user's would.
{
  lib,
  atollPackages,
  atollModules,
  ...
}: let
  irohRelayPort = 3340;
  nostrPort = 7777;

  # A swarm peer. `isolateFrom`: a node whose packets (IPv4 and IPv6) this
  # one drops, in the firewall's own chain so that a reload keeps the rule.
  swarmNode = {isolateFrom ? null}: {
    config,
    nodes,
    ...
  }: {
    services.atoll.swarm = {
      enable = true;
      openFirewall = true;
      settings = {
        node.relays = ["http://relay:${toString irohRelayPort}"];
        nostr.relays = ["ws://relay:${toString nostrPort}"];
        # A removed blob leaves the disk within a second (liar subtest).
        storage.gc_interval_secs = 1;
      };
    };

    # alice may use the node's socket, mallory may not.
    users.users.alice = {
      isNormalUser = true;
      extraGroups = [config.services.atoll.swarm.group];
    };
    users.users.mallory.isNormalUser = true;

    systemd.tmpfiles.rules = ["d /srv/atoll 0755 root root -"];

    # extraCommands is the iptables firewall's; pinned rather than assumed.
    networking.nftables.enable = false;
    networking.firewall.extraCommands = lib.optionalString (isolateFrom != null) (let
      peer = nodes.${isolateFrom}.networking;
    in ''
      iptables -I nixos-fw 1 -s ${peer.primaryIPAddress} -j DROP
      ip6tables -I nixos-fw 1 -s ${peer.primaryIPv6Address} -j DROP
    '');
  };
in {
  name = "atoll-swarm";

  nodes = {
    # The iroh relay and the Nostr relay (modules/devnet.nix).
    relay = {
      imports = [atollModules.devnet];
      services.atoll.devnet = {
        enable = true;
        package = atollPackages.atoll-devnet;
        # [::] is dual-stack: /etc/hosts names every node by IPv4 and IPv6.
        irohBind = "[::]:${toString irohRelayPort}";
        nostrBind = "[::]:${toString nostrPort}";
        openFirewall = true;
      };
    };

    a = swarmNode {isolateFrom = "b";};
    b = swarmNode {isolateFrom = "a";};
    c = swarmNode {};
    d = swarmNode {};

    # Serves /srv/origin over HTTP on port 80; `atoll hash` names its files.
    origin = {pkgs, ...}: {
      systemd.tmpfiles.rules = ["d /srv/origin 0755 root root -"];
      systemd.services.origin = {
        description = "HTTP origin for the swarm test";
        wantedBy = ["multi-user.target"];
        after = ["network.target"];
        environment.PYTHONUNBUFFERED = "1";
        # --bind :: is dual-stack, like the relay's [::].
        serviceConfig.ExecStart = "${lib.getExe pkgs.python3} -m http.server 80 --bind :: --directory /srv/origin";
      };
      networking.firewall.allowedTCPPorts = [80];
      environment.systemPackages = [pkgs.atoll];
    };
  };

  testScript = {nodes, ...}: let
    aIPv4 = nodes.a.networking.primaryIPAddress;
    aIPv6 = nodes.a.networking.primaryIPv6Address;
    bIPv4 = nodes.b.networking.primaryIPAddress;
    bIPv6 = nodes.b.networking.primaryIPv6Address;
  in ''
    import re

    SIZE = 50 * 1024 * 1024
    STORE = "/var/lib/private/atoll-swarm/blobs/data"
    swarm = [a, b, c, d]
    # Every file fetched, with the content id it must hash to.
    copies = []


    def match_group(pattern, text):
        """Group 1 of the first match of `pattern` (multi-line) in `text`;
        fails the test, showing `text`, when nothing matches."""
        found = re.search(pattern, text, re.M)
        assert found is not None, f"no match for {pattern!r} in:\n{text}"
        return found.group(1)


    def content_id(machine, path):
        """The file's blake3:<hex>, by `atoll hash`."""
        return machine.succeed(f"atoll hash {path}").split()[0]


    def node_id(machine):
        status = machine.succeed("atoll status")
        return match_group(r"^node id:\s+(\S+)", status)


    def get(machine, cid, path, extra=""):
        """`atoll blob get`, retried while adverts propagate; returns its
        report (which sources served, which peers failed)."""
        report = machine.wait_until_succeeds(
            f"atoll blob get {cid} -o {path} {extra} 2>&1", timeout=300
        )
        print(report)
        got = content_id(machine, path)
        assert got == cid, f"{machine.name}: {path} is {got}, not {cid}"
        copies.append((machine, path, cid))
        return report


    relay.start()
    origin.start()
    relay.wait_for_unit("atoll-devnet.service")
    relay.wait_for_open_port(${toString irohRelayPort})
    relay.wait_for_open_port(${toString nostrPort})
    origin.wait_for_unit("origin.service")
    origin.wait_for_open_port(80)
    for m in swarm:
        m.start()
    for m in swarm:
        m.wait_for_unit("atoll-swarm.service")
    ids = {m.name: node_id(m) for m in swarm}

    with subtest("the node runs sandboxed, its socket open to its group only"):
        a.succeed("test \"$(systemctl show -p Type --value atoll-swarm)\" = notify")
        a.succeed("test \"$(systemctl show -p WatchdogUSec --value atoll-swarm)\" = 30s")
        a.succeed("test \"$(stat -c '%U %a' /var/lib/private/atoll-swarm)\" = 'atoll-swarmd 700'")
        a.succeed("test \"$(stat -c '%a %G' /run/atoll-swarm)\" = '750 atoll-swarm'")
        a.succeed("test \"$(stat -c '%a %G' /run/atoll-swarm/swarmd.sock)\" = '660 atoll-swarm'")
        a.succeed("test \"$(su - alice -c 'printenv ATOLL_SWARM_SOCKET')\" = /run/atoll-swarm/swarmd.sock")
        a.succeed("su - alice -c 'atoll status'")
        a.fail("su - mallory -c 'atoll status'")
        print(a.succeed("systemd-analyze security atoll-swarm.service | tail -n 1"))

    with subtest("a and b have no direct path to each other"):
        b.fail("ping -c 1 -W 2 ${aIPv4}")
        b.fail("ping -c 1 -W 2 ${aIPv6}")
        a.fail("ping -c 1 -W 2 ${bIPv4}")
        a.fail("ping -c 1 -W 2 ${bIPv6}")
        c.succeed("ping -c 1 -W 2 ${aIPv4}")
        c.succeed("ping -c 1 -W 2 ${bIPv4}")

    with subtest("a adds a 50 MB blob"):
        a.succeed(f"head -c {SIZE} /dev/urandom > /srv/atoll/blob.bin")
        blob = content_id(a, "/srv/atoll/blob.bin")
        hexid = blob.removeprefix("blake3:")
        a.succeed("atoll blob add /srv/atoll/blob.bin")
        a.succeed(f"atoll blob ls | grep -F {hexid}")
        a.succeed(f"test -f {STORE}/{hexid}.data")

    with subtest("b fetches it from a through the relay"):
        report = get(b, blob, "/srv/atoll/blob.bin")
        assert ids["a"] in report, report

    with subtest("c fetches it from a and b"):
        report = get(c, blob, "/srv/atoll/blob.bin")
        assert ids["a"] in report and ids["b"] in report, report

    with subtest("a stops; d still fetches it, from b and c"):
        a.succeed("systemctl stop atoll-swarm.service")
        report = get(d, blob, "/srv/atoll/blob.bin")
        assert ids["b"] in report or ids["c"] in report, report

    with subtest("a peer serving wrong bytes is caught, the fetch completes elsewhere"):
        # Bit rot on c: one flipped word in every MiB of its stored copy.
        data = f"{STORE}/{hexid}.data"
        c.succeed(f"test \"$(stat -c %s {data})\" = {SIZE}")
        c.succeed(
            f"for i in $(seq 0 49); do printf '\\xde\\xad\\xbe\\xef' "
            f"| dd of={data} bs=1 seek=$((i * 1048576)) conv=notrunc status=none; done"
        )
        # d forgets its copy, so that it asks b and c again.
        d.succeed(f"atoll blob rm {blob}")
        d.wait_until_fails(f"test -e {STORE}/{hexid}.data", timeout=60)
        report = get(d, blob, "/srv/atoll/again.bin")
        assert re.search(rf"peer {re.escape(ids['c'])} failed", report), report
        assert ids["c"] in d.succeed("atoll status | grep '^avoiding:'")

    with subtest("with no seeders, the origin serves it"):
        origin.succeed("head -c 20M /dev/urandom > /srv/origin/film.bin")
        film = content_id(origin, "/srv/origin/film.bin")
        report = get(b, film, "/srv/atoll/film.bin", "--origin http://origin/film.bin")
        assert "fetched from origin http://origin/film.bin" in report, report
        origin.succeed("journalctl -u origin.service | grep -F 'GET /film.bin'")

    with subtest("every copy hashes to the original content id"):
        for machine, path, cid in copies:
            got = content_id(machine, path)
            assert got == cid, f"{machine.name}: {path} is {got}, not {cid}"
        assert {m.name for m, _, _ in copies} == {"b", "c", "d"}
  '';
}
