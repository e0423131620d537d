//! Cashu mint URLs as they may enter a trust list or a config: checked and
//! written in one canonical form (the form cdk writes in tokens), so that
//! `file:///etc/passwd`, `https://user:pass@…`, a 5,000-character host or a
//! look-alike Unicode host never becomes a mint the wallet calls.

use std::net::IpAddr;

/// Longest mint URL accepted, in bytes.
pub const MAX_MINT_URL_BYTES: usize = 512;
/// Longest host name accepted, in bytes (the DNS limit).
pub const MAX_HOST_BYTES: usize = 253;

/// Why a mint URL was refused. The messages do not repeat the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintUrlError {
    /// Empty.
    #[error("the mint URL is empty")]
    Empty,
    /// Longer than [`MAX_MINT_URL_BYTES`].
    #[error("the mint URL is longer than {MAX_MINT_URL_BYTES} bytes")]
    TooLong,
    /// Characters outside printable ASCII (spaces, control characters,
    /// Unicode look-alikes, direction overrides).
    #[error(
        "the mint URL may only hold printable ASCII characters (write an international host name in its xn-- form)"
    )]
    NotAscii,
    /// Not a URL at all.
    #[error("not a URL")]
    Unparsable,
    /// Not http(s).
    #[error("a mint URL must start with https:// (not {scheme}:)")]
    Scheme {
        /// The scheme given (at most 16 characters are kept).
        scheme: String,
    },
    /// Plain http to a host that is not this machine.
    #[error(
        "http:// is only allowed for mints on this machine (127.0.0.1, ::1, localhost); use https://, or allow insecure mints in the config"
    )]
    Insecure,
    /// A user name or password in the URL.
    #[error("a mint URL must not hold a user name or password")]
    UserInfo,
    /// A query or a fragment.
    #[error("a mint URL must not have a query (?…) or fragment (#…)")]
    QueryOrFragment,
    /// No host.
    #[error("the mint URL names no host")]
    NoHost,
    /// A host name over [`MAX_HOST_BYTES`].
    #[error("the mint's host name is longer than {MAX_HOST_BYTES} bytes")]
    HostTooLong,
}

/// Checks a mint URL and returns its canonical form: lower-case scheme and
/// host, no default port, no trailing slash (what cdk writes in tokens).
///
/// Accepted: `https://HOST[:PORT][/PATH]`; `http://` only for loopback
/// hosts unless `allow_insecure`. Refused: anything longer than 512
/// bytes or holding anything but printable ASCII, other schemes, user
/// info, queries, fragments, empty or over-long hosts.
pub fn canonical_mint_url(input: &str, allow_insecure: bool) -> Result<String, MintUrlError> {
    let input = input.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
    if input.is_empty() {
        return Err(MintUrlError::Empty);
    }
    if input.len() > MAX_MINT_URL_BYTES {
        return Err(MintUrlError::TooLong);
    }
    if !input.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(MintUrlError::NotAscii);
    }
    let url = url::Url::parse(input).map_err(|_| MintUrlError::Unparsable)?;
    // Written as `scheme://host…`: the URL parser would also read a host
    // out of `https:host` or `https:///host`.
    if input
        .split_once("://")
        .is_none_or(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
        && matches!(url.scheme(), "http" | "https")
    {
        return Err(MintUrlError::NoHost);
    }
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(MintUrlError::Scheme {
            scheme: scheme.chars().take(16).collect(),
        });
    }
    let loopback = match url.host() {
        None => return Err(MintUrlError::NoHost),
        Some(url::Host::Domain("")) => return Err(MintUrlError::NoHost),
        Some(url::Host::Domain(d)) if d.len() > MAX_HOST_BYTES => {
            return Err(MintUrlError::HostTooLong);
        }
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
    };
    if scheme == "http" && !loopback && !allow_insecure {
        return Err(MintUrlError::Insecure);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MintUrlError::UserInfo);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(MintUrlError::QueryOrFragment);
    }
    let host = url.host_str().ok_or(MintUrlError::NoHost)?;
    let mut out = format!("{}://{host}", url.scheme());
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path().trim_end_matches('/'));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls_are_made_canonical() {
        for (given, want) in [
            ("https://Mint.Example.org/", "https://mint.example.org"),
            ("https://mint.example.org:443", "https://mint.example.org"),
            (
                "https://mint.example.org:3338/Cashu//",
                "https://mint.example.org:3338/Cashu",
            ),
            ("http://127.0.0.1:3338", "http://127.0.0.1:3338"),
            ("http://[::1]:3338/", "http://[::1]:3338"),
            ("http://localhost:3338", "http://localhost:3338"),
            ("  https://m.example  ", "https://m.example"),
            ("https://xn--mnt-2ub.example", "https://xn--mnt-2ub.example"),
        ] {
            assert_eq!(canonical_mint_url(given, false).as_deref(), Ok(want));
        }
        assert_eq!(
            canonical_mint_url("http://mint.lan:3338", true).as_deref(),
            Ok("http://mint.lan:3338")
        );
    }

    #[test]
    fn hostile_urls_are_refused_without_echo() {
        let long_host = format!("https://{}.example", "a".repeat(5000));
        let long_label = format!("https://{}.example", "a.".repeat(130));
        for (bad, why) in [
            (
                "file:///etc/passwd",
                MintUrlError::Scheme {
                    scheme: "file".into(),
                },
            ),
            (
                "javascript:alert(1)",
                MintUrlError::Scheme {
                    scheme: "javascript".into(),
                },
            ),
            (
                "ftp://m.example",
                MintUrlError::Scheme {
                    scheme: "ftp".into(),
                },
            ),
            ("https://u:p@m.example", MintUrlError::UserInfo),
            ("https://u@m.example", MintUrlError::UserInfo),
            (long_host.as_str(), MintUrlError::TooLong),
            (long_label.as_str(), MintUrlError::HostTooLong),
            ("http://mint.example.org", MintUrlError::Insecure),
            ("http://10.0.0.1:3338", MintUrlError::Insecure),
            ("https://m.example/?q=1", MintUrlError::QueryOrFragment),
            ("https://m.example/#x", MintUrlError::QueryOrFragment),
            ("https://m\u{0435}.example", MintUrlError::NotAscii),
            ("https://m.example\u{202e}gpj", MintUrlError::NotAscii),
            ("https://m.exa\u{200b}mple", MintUrlError::NotAscii),
            ("https://m.exa mple", MintUrlError::NotAscii),
            ("https:///", MintUrlError::Unparsable),
            ("https:///nohost", MintUrlError::NoHost),
            ("https:nohost", MintUrlError::NoHost),
            ("not a url", MintUrlError::NotAscii),
            ("nope", MintUrlError::Unparsable),
            ("", MintUrlError::Empty),
        ] {
            let got = canonical_mint_url(bad, false);
            assert_eq!(got, Err(why), "{bad:?}");
            let text = got.unwrap_err().to_string();
            assert!(!text.contains("passwd") && !text.contains("aaaa"), "{text}");
        }
        // The "insecure" switch only lifts the https rule.
        assert_eq!(
            canonical_mint_url("https://u:p@m.example", true),
            Err(MintUrlError::UserInfo)
        );
        assert!(canonical_mint_url("file:///etc/passwd", true).is_err());
    }
}
