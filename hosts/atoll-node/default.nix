# atoll-node: a home server running the Atoll services (nixosConfigurations.atoll-node).
# Wiring only: which modules, which options. The boot loader and file systems
# are stand-ins that let the configuration evaluate and build; images/ will
# give the real disk layout.
{nixosModules, ...}: {
  imports = [nixosModules.default];

  nixpkgs.hostPlatform = "x86_64-linux";
  networking.hostName = "atoll-node";

  services.atoll.swarm = {
    enable = true;
    openFirewall = true;
  };

  # Stand-ins until images/ (an EFI disk with these labels).
  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = false;
  fileSystems."/" = {
    device = "/dev/disk/by-label/atoll-root";
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
  };

  system.stateVersion = "26.05";
}
