# Scenario 2, Relay (checks.x86_64-linux.vm-relay): a relay node runs
# services.atoll.relay (plain HTTP on the test network, with the opt-in the
# relay requires for it) and a Nostr relay for seed adverts (atoll-devnet);
# three swarm nodes use it as their only iroh relay. a and b are members,
# c is not; each drops the other two's packets, so whatever passes between
# them goes through the relay. Checks: the relay admits members and
# refuses c, b fetches a blob from a through it and c cannot, and removing
# b from the members file cuts b off within seconds.
{
  lib,
  atollPackages,
  atollModules,
  ...
}: let
  relayPort = 3340;
  relayUrl = "http://relay:${toString relayPort}";
  nostrPort = 7777;

  # The relay owner: a fixed key that no node holds (the owner is always a
  # member; here only the members file matters).
  owner = "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d";

  # A swarm peer whose only iroh relay is the group's. `isolateFrom`: nodes
  # whose packets (IPv4 and IPv6) this one drops, in the firewall's own
  # chain so that a reload keeps the rules.
  swarmNode = {isolateFrom ? []}: {nodes, ...}: {
    services.atoll.swarm = {
      enable = true;
      openFirewall = true;
      settings = {
        node.relays = [relayUrl];
        nostr.relays = ["ws://relay:${toString nostrPort}"];
        # A peer that cannot be reached is given up on quickly (the
        # subtests that expect a fetch to fail).
        fetch.peer_timeout_secs = 10;
      };
    };

    systemd.tmpfiles.rules = ["d /srv/atoll 0755 root root -"];

    # extraCommands is the iptables firewall's; pinned rather than assumed.
    networking.nftables.enable = false;
    networking.firewall.extraCommands =
      lib.concatMapStrings (name: let
        peer = nodes.${name}.networking;
      in ''
        iptables -I nixos-fw 1 -s ${peer.primaryIPAddress} -j DROP
        ip6tables -I nixos-fw 1 -s ${peer.primaryIPv6Address} -j DROP
      '')
      isolateFrom;
  };
in {
  name = "atoll-relay";

  nodes = {
    relay = {pkgs, ...}: {
      imports = [atollModules.devnet];
      services.atoll.relay = {
        enable = true;
        openFirewall = true;
        inherit owner;
        settings.server = {
          # [::] is dual-stack: /etc/hosts names every node by IPv4 and IPv6.
          bind = "[::]:${toString relayPort}";
          public_url = relayUrl;
          # No certificate on the test network: plain HTTP off loopback
          # must be asked for.
          insecure_http = true;
        };
      };

      # The Nostr relay only (modules/devnet.nix); its open iroh relay stays
      # on an ephemeral loopback port, out of the way (so the firewall is
      # opened by hand).
      services.atoll.devnet = {
        enable = true;
        package = atollPackages.atoll-devnet;
        irohBind = "127.0.0.1:0";
        nostrBind = "[::]:${toString nostrPort}";
      };
      networking.firewall.allowedTCPPorts = [nostrPort];

      environment.systemPackages = [pkgs.curl];
    };

    a = swarmNode {isolateFrom = ["b" "c"];};
    b = swarmNode {isolateFrom = ["a" "c"];};
    c = swarmNode {isolateFrom = ["a" "b"];};
  };

  testScript = {nodes, ...}: ''
    import re

    SIZE = 5 * 1024 * 1024
    KEYS = "/var/lib/private/atoll-swarm/keys"
    MEMBERS = "/var/lib/atoll-relay/members"
    RELAY = "${relayUrl}"
    # `atoll relay check` with the node's Nostr key (make_checker).
    CHECK = f"atoll relay check {RELAY} --dir /root/check 2>&1"
    IPV4 = {${lib.concatMapStringsSep ", " (n: ''"${n}": "${nodes.${n}.networking.primaryIPAddress}"'') ["a" "b" "c"]}}
    swarm = [a, b, c]


    def match_group(pattern, text):
        """Group 1 of the first match of `pattern` (multi-line) in `text`;
        fails the test, showing `text`, when nothing matches."""
        found = re.search(pattern, text, re.M)
        assert found is not None, f"no match for {pattern!r} in:\n{text}"
        return found.group(1)


    def content_id(machine, path):
        return machine.succeed(f"atoll hash {path}").split()[0]


    def node_id(machine):
        status = machine.succeed("atoll status")
        return match_group(r"^node id:\s+(\S+)", status)


    def npub(machine):
        """The Nostr key the node signs its relay tokens with."""
        keys = machine.succeed(f"atoll keys show --dir {KEYS}")
        return match_group(r"^nostr key:\s+(npub1\S+)", keys)


    def make_checker(machine):
        """/root/check: the node's Nostr key with an endpoint key of its own,
        so that `atoll relay check` never stands in for the daemon's own
        connection to the relay (one per endpoint id)."""
        machine.succeed(
            "rm -rf /root/check && atoll keys init --dir /root/check"
            f" && cp {KEYS}/nostr.key /root/check/nostr.key"
        )


    def blob_on_a(name):
        a.succeed(f"head -c {SIZE} /dev/urandom > /srv/atoll/{name}")
        cid = content_id(a, f"/srv/atoll/{name}")
        a.succeed(f"atoll blob add /srv/atoll/{name}")
        return cid


    # A fetch that must fail: lookup, then a peer that is never reached.
    def get_fails(machine, cid, path):
        out = machine.fail(f"timeout 180 atoll blob get {cid} -o {path} 2>&1")
        print(out)
        machine.fail(f"test -e {path}")


    relay.start()
    relay.wait_for_unit("atoll-relay.service")
    relay.wait_for_unit("atoll-devnet.service")
    relay.wait_for_open_port(${toString relayPort})
    relay.wait_for_open_port(${toString nostrPort})
    for m in swarm:
        m.start()
    for m in swarm:
        m.wait_for_unit("atoll-swarm.service")
    ids = {m.name: node_id(m) for m in swarm}
    keys = {m.name: npub(m) for m in swarm}
    for m in swarm:
        make_checker(m)

    with subtest("the relay runs sandboxed; its members file is ready for the CLI"):
        relay.succeed("test \"$(systemctl show -p Type --value atoll-relay)\" = notify")
        relay.succeed("test \"$(systemctl show -p User --value atoll-relay)\" = atoll-relayd")
        # Port 3340: no capability needed, none held.
        pid = relay.succeed("systemctl show -p MainPID --value atoll-relay").strip()
        relay.succeed(f"grep -E '^CapEff:\\s+0+$' /proc/{pid}/status")
        relay.succeed("test \"$(stat -c %a /var/lib/private/atoll-relay)\" = 700")
        relay.succeed(f"test \"$(stat -c %a {MEMBERS})\" = 644")
        relay.succeed(f"test -f {MEMBERS} && test ! -s {MEMBERS}")
        info = relay.succeed(f"curl -sf {RELAY}/.well-known/atoll-relay")
        assert "${owner}" in info, info
        print(relay.succeed("systemd-analyze security atoll-relay.service | tail -n 1"))

    with subtest("a, b and c reach the relay, never each other"):
        for m in swarm:
            m.succeed("ping -c 1 -W 2 relay")
            for peer, ipv4 in IPV4.items():
                if peer != m.name:
                    m.fail(f"ping -c 1 -W 2 {ipv4}")

    with subtest("members are admitted, the others refused"):
        out = a.fail(CHECK)
        assert "not a member" in out, out
        relay.succeed(f"atoll relay members add --file {MEMBERS} {keys['a']} {keys['b']}")
        relay.succeed(f"test \"$(stat -c %a {MEMBERS})\" = 644")
        # The relay re-reads the file within a second.
        assert "admitted" in a.wait_until_succeeds(CHECK, timeout=30)
        assert "admitted" in b.succeed(CHECK)
        out = c.fail(CHECK)
        assert "not a member" in out, out
        relay.succeed("journalctl -u atoll-relay.service | grep -F 'refused: '")
        # Their first dials were refused and iroh backs off: restart the
        # members so that they dial now.
        for m in [a, b]:
            m.succeed("systemctl restart atoll-swarm.service")
            m.wait_for_unit("atoll-swarm.service")

    with subtest("b fetches a blob from a through the relay"):
        blob = blob_on_a("one.bin")
        report = b.wait_until_succeeds(
            f"atoll blob get {blob} -o /srv/atoll/one.bin 2>&1", timeout=300
        )
        print(report)
        assert ids["a"] in report, report
        assert content_id(b, "/srv/atoll/one.bin") == blob

    with subtest("c, not a member, cannot fetch from a"):
        get_fails(c, blob, "/srv/atoll/one.bin")

    with subtest("removing b from the members file cuts b off within seconds"):
        two = blob_on_a("two.bin")
        relay.succeed(f"atoll relay members rm --file {MEMBERS} {keys['b']}")
        relay.wait_until_succeeds(
            "journalctl -u atoll-relay.service | grep -F 'dropping connection of a revoked member'",
            timeout=10,
        )
        out = b.wait_until_fails(CHECK, timeout=30)
        assert "not a member" in out, out
        get_fails(b, two, "/srv/atoll/two.bin")
        # a is still in.
        assert "admitted" in a.succeed(CHECK)
  '';
}
