# Scenario 3, Payment (checks.x86_64-linux.vm-payment), as NixOS VMs: the
# same scenario as crates/atoll-scenarios/tests/payment_netns.rs, with the
# modules instead of hand-written config files.
#
# infra runs services.atoll.devnet (test infrastructure): an iroh relay, a
# Nostr relay, an HTTP origin serving /srv/origin, two Cashu test mints on
# one fake Lightning network (each melt pays a 1 sat routing fee) and the
# Lightning endpoint that pays their invoices from outside. a, b and c run
# services.atoll.wallet and services.atoll.swarm, which sells or buys:
#
# - a sells at 1 sat/MB, accepts only mint 2 (its wallet trusts mint 2) and
#   serves c free (payment.trustedPeers);
# - b only buys (up to 2 sat/MB, 5 sat of fees per payment); its wallet
#   trusts mints 1 and 2 and is funded at mint 1 (`atoll wallet invoice`,
#   `POST /pay` to the devnet, `atoll wallet claim`), so it pays a through
#   a swap from mint 1 to mint 2;
# - c buys too, but holds nothing.
#
# Checks, first on b's wallet before any money moves: it runs sandboxed
# (Type=notify, watchdog, dynamic user, 0700 state directory with a 0600
# seed, 0750 runtime directory and 0660 socket in the wallet's group); a
# member of the group (a person, or a DynamicUser= service with
# SupplementaryGroups=, as the swarm node joins it) may use the socket and a
# non-member gets "permission denied"; `atoll wallet mints trust/ls/
# untrust`; the seed and the trust list survive a restart and the recovery
# phrase never reaches the journal. Then the scenario: c fetches a 20 MB
# paid blob from a free; b buys it from a, and b's balance drops by exactly
# the price (20 sat) plus the fee its history reports (mint 1's melt fee),
# a's rises by exactly the price, and both nodes' `GET /payments` agree;
# with a 3 sat per-payment budget, b is refused a 4 sat blob, spends
# nothing and gets it from the origin; no sat appears or disappears
# (balances + fees == funded).
#
# Not here: the crash-mid-swap rounds (SIGKILL of b's wallet at each step
# of a swap), which need sub-second timing; payment_netns.rs runs them.
#
# What the modules cannot say when the system is built is written at run
# time, as environment overrides of the daemons' config
# (ATOLL_SWARMD_…/ATOLL_WALLETD_…, crates/atoll-core/src/config.rs) in an
# optional EnvironmentFile= that each node declares: c's node id, which
# exists only once c's swarm node made its key, for a's
# payment.trusted_peers; and b's smaller budget for the last part.
{
  lib,
  atollPackages,
  atollModules,
  ...
}: let
  irohRelayPort = 3340;
  nostrPort = 7777;
  originPort = 8080;
  lightningPort = 8090;
  # Mint i listens on mintPort + i - 1.
  mintPort = 3338;

  # Every wallet and node names a mint by the same URL: tokens carry it.
  mint = i: "http://infra:${toString (mintPort + i - 1)}";
  mint1 = mint 1;
  mint2 = mint 2;

  # The testScript's run-time overrides (see the header).
  overrides = "/run/atoll-test";

  # A wallet and a swarm node that sells or buys; `payment`: its
  # services.atoll.swarm.payment options.
  peer = {
    trustedMints,
    payment,
  }: {pkgs, ...}: {
    services.atoll.wallet = {
      enable = true;
      settings = {
        wallet = {
          trusted_mints = trustedMints;
          # The devnet mints speak plain http on the infra VM.
          allow_insecure_mints = true;
          # The devnet mints set no request limit; pacing as shipped (20
          # calls a minute per mint) would only slow the test down.
          mint_pacing.burst = 0;
        };
        budget = {
          per_payment_sat = 1000;
          per_day_sat = 10000;
        };
      };
    };

    services.atoll.swarm = {
      enable = true;
      openFirewall = true;
      settings = {
        node.relays = ["http://infra:${toString irohRelayPort}"];
        nostr = {
          relays = ["ws://infra:${toString nostrPort}"];
          lookup_timeout_secs = 3;
        };
        fetch.peer_timeout_secs = 60;
      };
      inherit payment;
    };

    # "-": no file, no overrides.
    systemd.services.atoll-swarm.serviceConfig.EnvironmentFile = ["-${overrides}/swarm.env"];
    systemd.services.atoll-wallet.serviceConfig.EnvironmentFile = ["-${overrides}/wallet.env"];

    systemd.tmpfiles.rules = ["d /srv/atoll 0755 root root -"];
    environment.systemPackages = [pkgs.curl];
  };
in {
  name = "atoll-payment";

  nodes = {
    infra = {
      imports = [atollModules.devnet];
      services.atoll.devnet = {
        enable = true;
        package = atollPackages.atoll-devnet;
        openFirewall = true;
        # [::] and :: are dual-stack: /etc/hosts names every node by IPv4
        # and IPv6.
        irohBind = "[::]:${toString irohRelayPort}";
        nostrBind = "[::]:${toString nostrPort}";
        originDir = "/srv/origin";
        originBind = "[::]:${toString originPort}";
        mints = 2;
        mintBind = "::";
        inherit mintPort;
        meltFeeSat = 1;
        lightningBind = "[::]:${toString lightningPort}";
      };
      systemd.tmpfiles.rules = ["d /srv/origin 0755 root root -"];
    };

    # The seller.
    a = peer {
      trustedMints = [mint2];
      payment = {
        charge = true;
        priceSatPerMb = 1;
        acceptedMints = [mint2];
        # c's node id comes at run time (swarm.env, see the header).
      };
    };

    # The buyer; its wallet is also the one whose sandbox and socket are
    # checked. alice may spend, mallory may not.
    b = {config, ...}: let
      wallet = config.services.atoll.wallet;

      # A DynamicUser= service asking the wallet for its balance, as the
      # swarm node would; `groups`: its SupplementaryGroups=.
      client = groups: {
        description = "wallet client (test)";
        environment.ATOLL_WALLET_SOCKET = wallet.socket;
        serviceConfig = {
          Type = "oneshot";
          DynamicUser = true;
          SupplementaryGroups = groups;
          ExecStart = "${lib.getExe' wallet.package "atoll"} wallet balance";
        };
      };
    in {
      imports = [
        (peer {
          trustedMints = [mint1 mint2];
          payment = {
            maxPriceSatPerMb = 2;
            maxFeeSat = 5;
          };
        })
      ];

      users.users.alice = {
        isNormalUser = true;
        extraGroups = [wallet.group];
      };
      users.users.mallory.isNormalUser = true;

      systemd.services.spender = client [wallet.group];
      systemd.services.outsider = client [];
    };

    # Trusted by a; a buyer with no funds.
    c = peer {
      trustedMints = [mint2];
      payment = {
        maxPriceSatPerMb = 2;
        maxFeeSat = 5;
      };
    };
  };

  testScript = ''
    import json
    import re
    import shlex

    MINT1 = "${mint1}"
    MINT2 = "${mint2}"
    LIGHTNING = "http://infra:${toString lightningPort}"
    ORIGIN = "http://infra:${toString originPort}"
    OVERRIDES = "${overrides}"
    SEED = "/var/lib/private/atoll-wallet/keys/wallet.seed"
    WALLET_SOCKET = "/run/atoll-wallet/walletd.sock"
    SWARM_SOCKET = "/run/atoll-swarm/swarmd.sock"

    FUNDS = 100
    MELT_FEE = 1
    MAX_FEE = 5
    # 20 MB of 10^6 bytes: 20 sat at 1 sat/MB.
    BLOB_BYTES = 20_000_000
    PRICE = 20
    # 3.5 MB: 4 sat, over b's later per-payment budget of 3 sat.
    BLOB2_BYTES = 3_500_000
    SMALL_BUDGET = 3

    peers = [a, b, c]


    def match_group(pattern, text):
        """Group 1 of the first match of `pattern` (multi-line) in `text`;
        fails the test, showing `text`, when nothing matches."""
        found = re.search(pattern, text, re.M)
        assert found is not None, f"no match for {pattern!r} in:\n{text}"
        return found.group(1)


    def node_id(machine):
        status = machine.succeed("atoll status")
        return match_group(r"^node id:\s+(\S+)", status)


    def content_id(machine, path):
        return machine.succeed(f"atoll hash {path}").split()[0]


    def balance(machine):
        out = machine.succeed("atoll wallet balance")
        return int(match_group(r"^total:\s+(\d+) sat", out))


    def history(machine):
        """The wallet's history: (kind, amount, fee) per entry."""
        out = machine.succeed("atoll wallet history --limit 1000 --json")
        return [(e["kind"], e["amount_sat"], e["fee_sat"]) for e in json.loads(out)]


    def fees(machine):
        return sum(fee for _, _, fee in history(machine))


    def fund(machine, mint, amount):
        """An invoice at `mint`, paid by the devnet from outside, claimed."""
        bolt11 = machine.succeed(
            f"atoll wallet invoice --mint {mint} {amount} 2>/tmp/invoice.err"
        ).strip()
        quote = machine.succeed("cat /tmp/invoice.err").split()[-1]
        body = json.dumps({"bolt11": bolt11})
        machine.succeed(
            f"curl -fsS -X POST -H 'content-type: application/json' "
            f"-d {shlex.quote(body)} {LIGHTNING}/pay"
        )
        # "minted 0 sat" until the mint has seen the payment.
        machine.wait_until_succeeds(
            f"atoll wallet claim --mint {mint} {quote} | grep -v '^minted 0 sat$'",
            timeout=60,
        )


    def mark_paid(machine, cid):
        machine.succeed(f"atoll blob charge {cid}")
        listed = machine.succeed("atoll blob ls")
        assert any(l.startswith(cid) and l.endswith("paid") for l in listed.splitlines()), listed


    def payments(machine):
        """The node's GET /payments: totals and entries."""
        return json.loads(
            machine.succeed(f"curl -fsS --unix-socket {SWARM_SOCKET} http://localhost/payments")
        )


    def ticket(machine, cid):
        return machine.succeed(f"atoll blob ticket {cid}").strip()


    def get(machine, cid, path, tkt, origin=None):
        """`atoll blob get` once (a retry could pay twice); its report."""
        extra = f"--origin {origin}" if origin else ""
        report = machine.succeed(
            f"atoll blob get {cid} -o {path} --ticket {tkt} {extra} 2>&1"
        )
        print(report)
        got = content_id(machine, path)
        assert got == cid, f"{machine.name}: {path} is {got}, not {cid}"
        return report


    def override(machine, unit, name, line):
        """Writes one run-time override (see the header) and restarts."""
        machine.succeed(
            f"mkdir -p {OVERRIDES} && printf '%s\\n' {shlex.quote(line)} > {OVERRIDES}/{name}"
        )
        machine.succeed(f"systemctl restart {unit}")
        machine.wait_for_unit(unit)


    infra.start()
    infra.wait_for_unit("atoll-devnet.service")
    for port in [${toString irohRelayPort}, ${toString nostrPort}, ${toString originPort}, ${toString mintPort}, ${toString (mintPort + 1)}, ${toString lightningPort}]:
        infra.wait_for_open_port(port)
    for m in peers:
        m.start()
    for m in peers:
        m.wait_for_unit("atoll-wallet.service")
        m.wait_for_unit("atoll-swarm.service")
    ids = {m.name: node_id(m) for m in peers}

    with subtest("the devnet runs sandboxed with two mints on fixed ports"):
        infra.succeed("test \"$(systemctl show -p Type --value atoll-devnet)\" = notify")
        infra.succeed("test \"$(systemctl show -p WatchdogUSec --value atoll-devnet)\" = 30s")
        infra.succeed("test \"$(systemctl show -p User --value atoll-devnet)\" = atoll-devnet")
        infra.succeed("journalctl -u atoll-devnet.service | grep -F 'MINT_2=http://[::]:${toString (mintPort + 1)}'")
        for url in [MINT1, MINT2]:
            b.succeed(f"curl -fsS {url}/v1/info | grep -F 'atoll test mint'")
        print(infra.succeed("systemd-analyze security atoll-devnet.service | tail -n 1"))

    with subtest("the wallet runs sandboxed, its socket open to its group only"):
        b.succeed("test \"$(systemctl show -p Type --value atoll-wallet)\" = notify")
        b.succeed("test \"$(systemctl show -p WatchdogUSec --value atoll-wallet)\" = 30s")
        b.succeed("test \"$(systemctl show -p User --value atoll-wallet)\" = atoll-walletd")
        b.succeed("test \"$(stat -c '%U %a' /var/lib/private/atoll-wallet)\" = 'atoll-walletd 700'")
        b.succeed(f"test \"$(stat -c '%U %a' {SEED})\" = 'atoll-walletd 600'")
        b.succeed(f"test \"$(wc -w < {SEED})\" = 12")
        b.succeed("test \"$(stat -c '%a %G' /run/atoll-wallet)\" = '750 atoll-wallet'")
        b.succeed(f"test \"$(stat -c '%a %G' {WALLET_SOCKET})\" = '660 atoll-wallet'")
        b.succeed(f"test \"$(su - alice -c 'printenv ATOLL_WALLET_SOCKET')\" = {WALLET_SOCKET}")
        print(b.succeed("systemd-analyze security atoll-wallet.service | tail -n 1"))

    with subtest("a member of the group may use the wallet, others may not"):
        out = b.succeed("su - alice -c 'atoll wallet balance'")
        assert "total: 0 sat" in out, out
        assert MINT1 in out and MINT2 in out, out
        out = b.fail(f"su - mallory -c 'atoll wallet --wallet-socket {WALLET_SOCKET} balance' 2>&1")
        assert "Permission denied" in out, out
        out = b.fail("su - mallory -c 'atoll wallet mints trust http://evil:3338' 2>&1")
        assert "Permission denied" in out, out

    with subtest("a service in the group (SupplementaryGroups=) may, one outside may not"):
        b.succeed("systemctl start spender.service")
        b.wait_until_succeeds("journalctl -u spender.service | grep -F 'total: 0 sat'", timeout=30)
        b.fail("systemctl start outsider.service")
        b.wait_until_succeeds("journalctl -u outsider.service | grep -F 'Permission denied'", timeout=30)

    with subtest("the trust list: from the config, and edited with atoll wallet mints"):
        out = b.succeed("su - alice -c 'atoll wallet mints ls'")
        assert MINT1 in out and MINT2 in out, out
        # Mint URLs are kept in cdk's canonical form. Trusting a mint
        # contacts nobody.
        out = b.succeed("su - alice -c 'atoll wallet mints trust HTTP://Spare-Mint:3338/'")
        assert "trusted http://spare-mint:3338" in out, out
        out = b.succeed("su - alice -c 'atoll wallet mints ls'")
        assert MINT1 in out and "http://spare-mint:3338" in out, out
        b.fail("su - alice -c 'atoll wallet mints trust not-a-url'")

    with subtest("the seed and the trust list survive a restart; the seed is never logged"):
        seed = b.succeed(f"sha256sum {SEED}")
        b.succeed("systemctl restart atoll-wallet.service")
        b.wait_for_unit("atoll-wallet.service")
        assert b.succeed(f"sha256sum {SEED}") == seed
        out = b.succeed("su - alice -c 'atoll wallet mints ls'")
        assert MINT1 in out and "http://spare-mint:3338" in out, out
        out = b.succeed("su - alice -c 'atoll wallet mints untrust http://spare-mint:3338'")
        assert "no longer trusted: http://spare-mint:3338 (0 sat still held)" in out, out
        out = b.succeed("su - alice -c 'atoll wallet mints ls'")
        assert "spare-mint" not in out and MINT1 in out and MINT2 in out, out
        b.succeed("journalctl -u atoll-wallet.service | grep -F 'created a new wallet seed'")
        b.fail(f"journalctl -b | grep -F \"$(cat {SEED})\"")

    with subtest("b is funded at mint 1 through the devnet's Lightning endpoint"):
        fund(b, MINT1, FUNDS)
        assert balance(b) == FUNDS, b.succeed("atoll wallet balance")
        assert fees(b) == 0, history(b)
        for m in [a, c]:
            assert balance(m) == 0 and history(m) == [], m.name

    with subtest("a trusts c's node (payment.trusted_peers, written at run time)"):
        override(
            a,
            "atoll-swarm.service",
            "swarm.env",
            f"ATOLL_SWARMD_PAYMENT__TRUSTED_PEERS='[\"{ids['c']}\"]'",
        )
        environ = a.succeed(
            "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value atoll-swarm)/environ"
        )
        assert f'ATOLL_SWARMD_PAYMENT__TRUSTED_PEERS=["{ids["c"]}"]' in environ, environ
        assert node_id(a) == ids["a"], "a restart keeps a's identity"

    with subtest("a adds a 20 MB blob and charges for it"):
        a.succeed(f"head -c {BLOB_BYTES} /dev/urandom > /srv/atoll/film.bin")
        blob = content_id(a, "/srv/atoll/film.bin")
        a.succeed("atoll blob add /srv/atoll/film.bin")
        mark_paid(a, blob)
        t1 = ticket(a, blob)

    with subtest("trusted c, with no funds, gets it from a for nothing"):
        report = get(c, blob, "/srv/atoll/film.bin", t1)
        assert f"fetched from peer(s) {ids['a']}" in report, report
        assert balance(c) == 0 and history(c) == [], history(c)
        assert balance(a) == 0, "a earned nothing from trusted c"
        assert payments(a)["entries"] == [], payments(a)
        # c no longer holds it, so b can only buy it from a.
        c.succeed(f"atoll blob rm {blob}")

    with subtest("b buys it from a, swapping mint 1 ecash into mint 2"):
        report = get(b, blob, "/srv/atoll/film.bin", t1)
        assert f"fetched from peer(s) {ids['a']}" in report, report
        fee_b = fees(b)
        assert fee_b <= MAX_FEE, history(b)
        assert fee_b == MELT_FEE, f"the swap costs mint 1's melt fee: {history(b)}"
        assert balance(b) == FUNDS - PRICE - fee_b, (
            f"b's wallet moves by exactly the price plus the fee it reports: {history(b)}"
        )
        a.wait_until_succeeds("atoll wallet balance | grep -Eq '^total: +[1-9]'", timeout=10)
        assert balance(a) == PRICE, f"a's wallet rises by exactly the price: {history(a)}"
        assert fees(a) == 0, history(a)

    with subtest("both nodes' GET /payments agree with the wallets"):
        sold = payments(a)
        print(json.dumps(sold, indent=2))
        assert [(e["direction"], e["peer"], e["amount_sat"], e["mint"]) for e in sold["entries"]] == [
            ("revenue", ids["b"], PRICE, MINT2)
        ], sold
        assert sold["totals"]["revenue_sat"] == PRICE, sold
        bought = payments(b)
        print(json.dumps(bought, indent=2))
        assert [
            (e["direction"], e["peer"], e["amount_sat"], e["fee_sat"], e["mint"])
            for e in bought["entries"]
        ] == [("spending", ids["a"], PRICE, fee_b, MINT2)], bought
        assert bought["totals"]["spent_sat"] == PRICE + fee_b, bought

    with subtest("over its budget, b spends nothing and the origin serves"):
        override(
            b,
            "atoll-wallet.service",
            "wallet.env",
            f"ATOLL_WALLETD_BUDGET__PER_PAYMENT_SAT={SMALL_BUDGET}",
        )
        assert balance(b) == FUNDS - PRICE - fee_b, "a restart keeps b's ecash"
        # The origin holds the second paid blob; a seeds a copy of it.
        infra.succeed(f"head -c {BLOB2_BYTES} /dev/urandom > /srv/origin/second.bin")
        a.succeed(f"curl -fsS {ORIGIN}/second.bin -o /srv/atoll/second.bin")
        blob2 = content_id(a, "/srv/atoll/second.bin")
        a.succeed("atoll blob add /srv/atoll/second.bin")
        mark_paid(a, blob2)
        t2 = ticket(a, blob2)
        report = get(b, blob2, "/srv/atoll/second.bin", t2, f"{ORIGIN}/second.bin")
        assert "fetched from origin" in report, report
        assert f"peer {ids['a']} failed" in report, report
        assert balance(b) == FUNDS - PRICE - fee_b, history(b)
        assert fees(b) == fee_b, history(b)
        assert balance(a) == PRICE, "a earns nothing from the refused deal"

    with subtest("no sat appears or disappears"):
        held = sum(balance(m) for m in peers)
        paid = sum(fees(m) for m in peers)
        assert held + paid == FUNDS, f"{held} held + {paid} fees != {FUNDS} funded"
  '';
}
