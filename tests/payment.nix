# Scenario 3, Payment (checks.x86_64-linux.vm-payment), as far as its parts
# exist: the wallet service and who may spend.
#
# One node runs services.atoll.wallet trusting a mint URL from `settings`.
# Checks: the service comes up sandboxed (Type=notify, watchdog, dynamic
# user, 0700 state directory with a 0600 seed, 0750 runtime directory and
# 0660 socket in the wallet's group); a member of the group can use the
# socket (`atoll wallet balance`, `atoll wallet mints trust/ls/untrust`)
# and a non-member gets "permission denied", both for people and for
# DynamicUser= services (the way the swarm node joins the group with
# SupplementaryGroups= when services.atoll.swarm.payment.enable is set);
# the trust list and the seed survive a restart, and the recovery phrase
# never reaches the journal. No mint is contacted: balance and the trust
# list are local.
#
# What the full scenario (DESIGN.md "Payment") still needs:
# - A mint service: two cdk mints on a fake Lightning backend as NixOS
#   services. The testkit's mints run in-process in Rust tests only; there
#   is no mint binary yet (e.g. an `atoll-devnet --mint-bind` option, or
#   cdk-mintd with its fake wallet backend packaged by the flake).
# - The payment gate in atoll-swarmd (`[payment]`, docs/swarm.md): then two
#   swarm nodes with services.atoll.swarm.payment enabled, a seller that
#   charges and accepts mint A and a buyer whose wallet holds ecash at
#   mint B (funded with `atoll wallet invoice` + the fake backend), and
#   checks that the buyer swaps B -> A, pays, fetches the paid blob, that
#   both wallets' history and the seller's `GET /payments` agree, that a
#   budget too small makes the buyer fall back to the origin, and that a
#   peer in trustedPeers is served free.
{lib, ...}: let
  mintA = "http://mint-a:3338";
in {
  name = "atoll-payment";

  nodes.node = {config, ...}: let
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
    services.atoll.wallet = {
      enable = true;
      settings = {
        wallet.trusted_mints = [mintA];
        budget = {
          per_payment_sat = 100;
          per_day_sat = 1000;
        };
      };
    };

    # alice may spend, mallory may not.
    users.users.alice = {
      isNormalUser = true;
      extraGroups = [wallet.group];
    };
    users.users.mallory.isNormalUser = true;

    systemd.services.spender = client [wallet.group];
    systemd.services.outsider = client [];
  };

  testScript = ''
    SEED = "/var/lib/private/atoll-wallet/keys/wallet.seed"
    SOCKET = "/run/atoll-wallet/walletd.sock"

    node.start()
    node.wait_for_unit("atoll-wallet.service")

    with subtest("the wallet runs sandboxed, its socket open to its group only"):
        node.succeed("test \"$(systemctl show -p Type --value atoll-wallet)\" = notify")
        node.succeed("test \"$(systemctl show -p WatchdogUSec --value atoll-wallet)\" = 30s")
        node.succeed("test \"$(systemctl show -p User --value atoll-wallet)\" = atoll-walletd")
        node.succeed("test \"$(stat -c '%U %a' /var/lib/private/atoll-wallet)\" = 'atoll-walletd 700'")
        node.succeed(f"test \"$(stat -c '%U %a' {SEED})\" = 'atoll-walletd 600'")
        node.succeed(f"test \"$(wc -w < {SEED})\" = 12")
        node.succeed("test \"$(stat -c '%a %G' /run/atoll-wallet)\" = '750 atoll-wallet'")
        node.succeed(f"test \"$(stat -c '%a %G' {SOCKET})\" = '660 atoll-wallet'")
        node.succeed(f"test \"$(su - alice -c 'printenv ATOLL_WALLET_SOCKET')\" = {SOCKET}")
        print(node.succeed("systemd-analyze security atoll-wallet.service | tail -n 1"))

    with subtest("a member of the group may use the wallet, others may not"):
        out = node.succeed("su - alice -c 'atoll wallet balance'")
        assert "total: 0 sat" in out, out
        assert "${mintA}" in out, out
        out = node.fail(f"su - mallory -c 'atoll wallet --wallet-socket {SOCKET} balance' 2>&1")
        assert "Permission denied" in out, out
        out = node.fail("su - mallory -c 'atoll wallet mints trust http://evil:3338' 2>&1")
        assert "Permission denied" in out, out

    with subtest("a service in the group (SupplementaryGroups=) may, one outside may not"):
        node.succeed("systemctl start spender.service")
        node.wait_until_succeeds("journalctl -u spender.service | grep -F 'total: 0 sat'", timeout=30)
        node.fail("systemctl start outsider.service")
        node.wait_until_succeeds("journalctl -u outsider.service | grep -F 'Permission denied'", timeout=30)

    with subtest("the trust list: from the config, and edited with atoll wallet mints"):
        out = node.succeed("su - alice -c 'atoll wallet mints ls'")
        assert "${mintA}" in out, out
        # Mint URLs are kept in cdk's canonical form.
        out = node.succeed("su - alice -c 'atoll wallet mints trust HTTP://Mint-B:3338/'")
        assert "trusted http://mint-b:3338" in out, out
        out = node.succeed("su - alice -c 'atoll wallet mints ls'")
        assert "${mintA}" in out and "http://mint-b:3338" in out, out
        node.fail("su - alice -c 'atoll wallet mints trust not-a-url'")

    with subtest("the seed and the trust list survive a restart; the seed is never logged"):
        seed = node.succeed(f"sha256sum {SEED}")
        node.succeed("systemctl restart atoll-wallet.service")
        node.wait_for_unit("atoll-wallet.service")
        assert node.succeed(f"sha256sum {SEED}") == seed
        out = node.succeed("su - alice -c 'atoll wallet mints ls'")
        assert "${mintA}" in out and "http://mint-b:3338" in out, out
        out = node.succeed("su - alice -c 'atoll wallet mints untrust http://mint-b:3338'")
        assert "no longer trusted: http://mint-b:3338 (0 sat still held)" in out, out
        out = node.succeed("su - alice -c 'atoll wallet mints ls'")
        assert "mint-b" not in out, out
        node.succeed("journalctl -u atoll-wallet.service | grep -F 'created a new wallet seed'")
        node.fail(f"journalctl -b | grep -F \"$(cat {SEED})\"")
  '';
}
