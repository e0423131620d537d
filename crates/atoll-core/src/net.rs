//! iroh endpoints that never reach the internet on their own: no n0 DNS,
//! no pkarr, no public relays, no port mapping. Relays are only the ones
//! given; peers are found through Atoll's own adverts and addresses.

use iroh::{
    RelayMap, RelayMode, SecretKey,
    dns::DnsResolver,
    endpoint::{Builder, PortmapperConfig, presets},
};

/// An endpoint builder for `secret`, using only the relays in `relays`
/// (none: relaying disabled, direct addresses only).
///
/// With relaying disabled `Endpoint::online()` never resolves; wait on
/// `watch_addr()` for direct addresses instead.
pub fn endpoint_builder(secret: SecretKey, relays: Option<RelayMap>) -> Builder {
    let mut net_report = iroh::NetReportConfig::minimal();
    // HTTPS probes are how a home relay is chosen without QUIC address
    // discovery; they only ever go to the configured relays.
    net_report.https_probes = relays.is_some();
    let relay_mode = match relays {
        Some(map) => RelayMode::Custom(map),
        None => RelayMode::Disabled,
    };
    iroh::Endpoint::builder(presets::Minimal)
        .secret_key(secret)
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(net_report)
        .dns_resolver(
            DnsResolver::builder()
                .with_system_defaults()
                .disable_fallback()
                .build(),
        )
        .relay_mode(relay_mode)
}
