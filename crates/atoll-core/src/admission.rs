//! Relay admission tokens: what a node presents to an Atoll relay
//! (`atoll-relayd`) to be let in, and how the relay checks it. Signer (swarm
//! node, CLI) and verifier (relay) both live here so they cannot drift.
//!
//! A token is the standard base64 (with padding) of the JSON of one signed
//! Nostr event of kind 27235 (NIP-98 HTTP auth) with these tags, each exactly
//! once:
//!
//! | tag          | value                                                   |
//! |--------------|---------------------------------------------------------|
//! | `u`          | the relay URL, in [`canonical_relay_url`] form          |
//! | `method`     | `GET` (the relay upgrade request)                        |
//! | `endpoint`   | the iroh endpoint id of the connecting node (64 hex)   |
//! | `expiration` | NIP-40 expiry, unix seconds                             |
//!
//! iroh sends it as `Authorization: Bearer <token>` on the relay upgrade.
//! Unlike a plain NIP-98 event (valid for a minute), the token lives for
//! hours: iroh fixes a client's token for the life of its endpoint, so it
//! must survive reconnects. The `endpoint` tag, checked against the id the
//! relay handshake has already proven, is what stops a captured token from
//! being replayed by anyone else; the expiry bounds how long a stolen node
//! key plus token stay useful.
//!
//! Whether the signer is a member of the relay's group is not this module's
//! business: [`verify`] answers "who signed this, for which endpoint, until
//! when"; the relay decides membership.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use iroh::EndpointId;
use nostr::{Event, EventBuilder, JsonUtil, Keys, Kind, PublicKey, Tag, TagKind, Timestamp};

use crate::kinds::HTTP_AUTH;

/// Largest token accepted, in bytes of base64 text, checked before any
/// decoding. A real token is under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// The HTTP method a token is bound to: the relay's websocket upgrade.
pub const METHOD: &str = "GET";
/// Tag naming the iroh endpoint a token is bound to.
pub const ENDPOINT_TAG: &str = "endpoint";
/// Longest lifetime a token may have, from the verifier's clock.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// A sensible lifetime for a node's token: long enough for iroh's
/// reconnects, short enough that a leaked token soon dies.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default tolerance for clocks that disagree.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A relay URL that cannot be put in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {reason}")]
    Parse {
        /// The parser's complaint.
        reason: String,
    },
    /// Not `http` or `https`.
    #[error("relay URLs are http:// or https://, not {scheme}://")]
    Scheme {
        /// The scheme found.
        scheme: String,
    },
    /// No host.
    #[error("relay URL has no host")]
    NoHost,
    /// A user name or password in the URL.
    #[error("relay URL must not carry a user name or password")]
    Userinfo,
    /// A query string or fragment.
    #[error("relay URL must not have a query or fragment")]
    QueryOrFragment,
}

/// The one canonical spelling of a relay URL, used by signer and verifier
/// alike: scheme and host lowercase, a trailing dot on the host dropped,
/// default ports dropped, dot segments resolved and no trailing slash.
/// `https://relay.example.org` and `https://RELAY.example.org:443/` are
/// the same relay. Only `http` and `https` are relay URLs; user info,
/// queries and fragments are refused rather than silently dropped.
pub fn canonical_relay_url(url: &str) -> Result<String, UrlError> {
    let parsed = url::Url::parse(url).map_err(|e| UrlError::Parse {
        reason: e.to_string(),
    })?;
    let scheme = parsed.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(UrlError::Scheme {
            scheme: scheme.to_owned(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Userinfo);
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(UrlError::QueryOrFragment);
    }
    let host = parsed.host_str().ok_or(UrlError::NoHost)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = parsed.path().trim_end_matches('/');
    Ok(format!("{scheme}://{host}{port}{path}"))
}

/// Errors making a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The relay URL is unusable.
    #[error("relay URL: {0}")]
    Url(#[from] UrlError),
    /// The lifetime is zero or longer than [`MAX_TTL`].
    #[error("token lifetime must be between 1 second and {} seconds, not {ttl_secs}", MAX_TTL.as_secs())]
    Ttl {
        /// The lifetime asked for.
        ttl_secs: u64,
    },
    /// The clock is before 1970.
    #[error("system clock is before the unix epoch")]
    Clock,
    /// Signing failed.
    #[error("signing the admission event: {0}")]
    Sign(#[source] nostr::event::builder::Error),
    /// The event could not be written as JSON.
    #[error("serialising the admission event")]
    Json,
}

/// Makes a token for `endpoint_id` to use with the relay at `relay_url`,
/// valid for `ttl` (at most [`MAX_TTL`]; [`DEFAULT_TTL`] is a good choice)
/// from now.
pub fn sign(
    keys: &Keys,
    relay_url: &str,
    endpoint_id: &EndpointId,
    ttl: Duration,
) -> Result<String, SignError> {
    sign_at(keys, relay_url, endpoint_id, SystemTime::now(), ttl)
}

/// Like [`sign`], as if the clock read `now`.
pub fn sign_at(
    keys: &Keys,
    relay_url: &str,
    endpoint_id: &EndpointId,
    now: SystemTime,
    ttl: Duration,
) -> Result<String, SignError> {
    let ttl_secs = ttl.as_secs();
    if ttl_secs == 0 || ttl > MAX_TTL {
        return Err(SignError::Ttl { ttl_secs });
    }
    let url = canonical_relay_url(relay_url)?;
    let created = unix_secs(now).ok_or(SignError::Clock)?;
    let event = EventBuilder::new(Kind::from(HTTP_AUTH), "")
        .tags([
            tag(&["u", &url]),
            tag(&["method", METHOD]),
            tag(&[ENDPOINT_TAG, &endpoint_hex(endpoint_id)]),
            tag(&["expiration", &(created + ttl_secs).to_string()]),
        ])
        .custom_created_at(Timestamp::from_secs(created))
        .sign_with_keys(keys)
        .map_err(SignError::Sign)?;
    encode(&event)
}

/// The token form of an event: standard base64 of its JSON.
pub fn encode(event: &Event) -> Result<String, SignError> {
    let json = event.try_as_json().map_err(|_| SignError::Json)?;
    Ok(ENGINE.encode(json))
}

/// A tag `[name, values...]`, verbatim.
fn tag(parts: &[&str]) -> Tag {
    let (name, values) = parts.split_first().unwrap_or((&"", &[]));
    Tag::custom(TagKind::custom(name.to_string()), values.iter().copied())
}

fn endpoint_hex(id: &EndpointId) -> String {
    hex::encode(id.as_bytes())
}

fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Who was admitted, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The Nostr key that signed the token: the one to check for membership.
    pub pubkey: PublicKey,
    /// When the token stops being accepted.
    pub expires_at: SystemTime,
}

/// Why a token was refused. No message ever repeats the token or any text
/// taken from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// No token, or an empty one.
    #[error("empty token")]
    Empty,
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token of {len} bytes is over the {max} byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not strict standard base64 (whitespace, wrong alphabet, bad padding).
    #[error("token is not standard base64: {reason}")]
    NotBase64 {
        /// What was wrong.
        reason: &'static str,
    },
    /// Decodes, but not to a Nostr event.
    #[error("token is not a Nostr event (JSON {category} error at column {column})")]
    NotEvent {
        /// serde_json's class of error: syntax, data, eof.
        category: &'static str,
        /// Where, in the decoded JSON.
        column: usize,
    },
    /// The event id or signature does not verify.
    #[error("bad event id or signature")]
    BadSignature,
    /// Not kind 27235.
    #[error("event kind {kind} is not {HTTP_AUTH} (HTTP auth)")]
    WrongKind {
        /// The kind found.
        kind: u16,
    },
    /// A required tag is missing.
    #[error("missing `{tag}` tag")]
    MissingTag {
        /// The tag's name.
        tag: &'static str,
    },
    /// A required tag appears more than once.
    #[error("more than one `{tag}` tag")]
    DuplicateTag {
        /// The tag's name.
        tag: &'static str,
    },
    /// The `u` tag names another relay.
    #[error("token is for another relay URL")]
    WrongUrl,
    /// The `method` tag is not `GET`.
    #[error("token is for another HTTP method")]
    WrongMethod,
    /// The `endpoint` tag names another endpoint than the one connecting.
    #[error("token is bound to another endpoint")]
    WrongEndpoint,
    /// The `expiration` tag is not unix seconds.
    #[error("malformed `expiration` tag")]
    BadExpiration,
    /// Expired.
    #[error("token expired at {expired_at} (unix seconds)")]
    Expired {
        /// Its expiry.
        expired_at: u64,
    },
    /// Expires further ahead than the verifier's cap.
    #[error("token expires more than {max_secs} seconds ahead")]
    TooLong {
        /// The cap.
        max_secs: u64,
    },
    /// Created in the future, beyond the allowed clock skew.
    #[error("token is dated {ahead_secs} seconds in the future")]
    FromTheFuture {
        /// How far ahead.
        ahead_secs: u64,
    },
    /// The verifier's own relay URL is unusable.
    #[error("the relay's own URL is invalid: {0}")]
    ExpectedUrl(UrlError),
    /// The verifier's clock is before 1970.
    #[error("system clock is before the unix epoch")]
    Clock,
}

/// Checks tokens for one relay. Build it once; [`Verifier::verify`] is
/// cheap apart from one Schnorr signature check.
#[derive(Debug, Clone)]
pub struct Verifier {
    url: String,
    max_skew: Duration,
    max_ttl: Duration,
}

impl Verifier {
    /// A verifier for the relay at `relay_url` (any spelling: it is
    /// canonicalised), tolerating `max_skew` of clock difference and
    /// expiries up to [`MAX_TTL`] ahead.
    pub fn new(relay_url: &str, max_skew: Duration) -> Result<Self, UrlError> {
        Ok(Self {
            url: canonical_relay_url(relay_url)?,
            max_skew,
            max_ttl: MAX_TTL,
        })
    }

    /// Lowers (never raises) the longest accepted lifetime.
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl.min(MAX_TTL);
        self
    }

    /// The canonical URL tokens must name.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks `token` presented by `endpoint_id` (as proven by the relay
    /// handshake) at time `now`. Cheap structural checks come first, the
    /// signature last.
    pub fn verify(
        &self,
        token: &str,
        endpoint_id: &EndpointId,
        now: SystemTime,
    ) -> Result<Admission, AdmissionError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AdmissionError::TooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        if token.is_empty() {
            return Err(AdmissionError::Empty);
        }
        if token.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(AdmissionError::NotBase64 {
                reason: "contains whitespace",
            });
        }
        let json = ENGINE
            .decode(token)
            .map_err(|e| AdmissionError::NotBase64 {
                reason: match e {
                    base64::DecodeError::InvalidByte(..) => "invalid character",
                    base64::DecodeError::InvalidLength(_) => "invalid length",
                    base64::DecodeError::InvalidLastSymbol(..) => "non-canonical last symbol",
                    base64::DecodeError::InvalidPadding => "invalid padding",
                },
            })?;
        // `Event::from_json` is this call, but keeps only the message,
        // which may quote the input; the category and column do not.
        let event: Event = serde_json::from_slice(&json).map_err(|e| AdmissionError::NotEvent {
            category: match e.classify() {
                serde_json::error::Category::Io => "io",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "eof",
            },
            column: e.column(),
        })?;
        let kind = event.kind.as_u16();
        if kind != HTTP_AUTH {
            return Err(AdmissionError::WrongKind { kind });
        }
        let now_secs = unix_secs(now).ok_or(AdmissionError::Clock)?;
        let skew = self.max_skew.as_secs();
        let created = event.created_at.as_secs();
        if created > now_secs.saturating_add(skew) {
            return Err(AdmissionError::FromTheFuture {
                ahead_secs: created - now_secs,
            });
        }
        let tags = TagView::of(&event)?;
        if tags.url != self.url {
            return Err(AdmissionError::WrongUrl);
        }
        if tags.method != METHOD {
            return Err(AdmissionError::WrongMethod);
        }
        if tags.endpoint != endpoint_hex(endpoint_id) {
            return Err(AdmissionError::WrongEndpoint);
        }
        let expires = parse_secs(tags.expiration).ok_or(AdmissionError::BadExpiration)?;
        if expires <= now_secs {
            return Err(AdmissionError::Expired {
                expired_at: expires,
            });
        }
        let max_secs = self.max_ttl.as_secs();
        if expires > now_secs.saturating_add(max_secs).saturating_add(skew) {
            return Err(AdmissionError::TooLong { max_secs });
        }
        event.verify().map_err(|_| AdmissionError::BadSignature)?;
        Ok(Admission {
            pubkey: event.pubkey,
            expires_at: UNIX_EPOCH + Duration::from_secs(expires),
        })
    }
}

/// Strict unix seconds: ASCII digits only, no sign, no leading zeros.
fn parse_secs(s: &str) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= 19
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

/// The four tags a token must carry, each exactly once.
struct TagView<'a> {
    url: &'a str,
    method: &'a str,
    endpoint: &'a str,
    expiration: &'a str,
}

impl<'a> TagView<'a> {
    fn of(event: &'a Event) -> Result<Self, AdmissionError> {
        let mut found: [Option<&'a str>; 4] = [None; 4];
        const NAMES: [&str; 4] = ["u", "method", ENDPOINT_TAG, "expiration"];
        for tag in event.tags.iter() {
            let parts = tag.as_slice();
            let Some(i) = parts
                .first()
                .and_then(|name| NAMES.iter().position(|n| n == name))
            else {
                continue;
            };
            if found[i].is_some() {
                return Err(AdmissionError::DuplicateTag { tag: NAMES[i] });
            }
            // A tag without a value counts as missing.
            found[i] = parts.get(1).map(String::as_str);
            if found[i].is_none() {
                return Err(AdmissionError::MissingTag { tag: NAMES[i] });
            }
        }
        let get = |i: usize| found[i].ok_or(AdmissionError::MissingTag { tag: NAMES[i] });
        Ok(Self {
            url: get(0)?,
            method: get(1)?,
            endpoint: get(2)?,
            expiration: get(3)?,
        })
    }
}

/// Checks `token` for the relay at `expected_url`, presented by
/// `endpoint_id`, at `now`, tolerating `max_skew`; a one-shot
/// [`Verifier`].
pub fn verify(
    token: &str,
    expected_url: &str,
    endpoint_id: &EndpointId,
    now: SystemTime,
    max_skew: Duration,
) -> Result<Admission, AdmissionError> {
    Verifier::new(expected_url, max_skew)
        .map_err(AdmissionError::ExpectedUrl)?
        .verify(token, endpoint_id, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://relay.example.org";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn endpoint(seed: u8) -> EndpointId {
        iroh::SecretKey::from_bytes(&[seed; 32]).public()
    }

    fn keys() -> Keys {
        Keys::generate()
    }

    fn check(token: &str) -> Result<Admission, AdmissionError> {
        verify(token, URL, &endpoint(1), now(), DEFAULT_MAX_SKEW)
    }

    /// An event built by hand, with `tags` and `kind`, signed by `keys`.
    fn event_with(keys: &Keys, kind: u16, created: u64, tags: &[&[&str]]) -> Event {
        EventBuilder::new(Kind::from(kind), "")
            .tags(tags.iter().map(|t| tag(t)))
            .custom_created_at(Timestamp::from_secs(created))
            .sign_with_keys(keys)
            .unwrap()
    }

    fn good_tags(exp: &str) -> Vec<Vec<String>> {
        vec![
            vec!["u".into(), URL.into()],
            vec!["method".into(), "GET".into()],
            vec![ENDPOINT_TAG.into(), endpoint_hex(&endpoint(1))],
            vec!["expiration".into(), exp.into()],
        ]
    }

    fn token_with(kind: u16, created: u64, tags: Vec<Vec<String>>) -> String {
        let tags: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        encode(&event_with(&keys(), kind, created, &tags)).unwrap()
    }

    fn t0() -> u64 {
        unix_secs(now()).unwrap()
    }

    #[test]
    fn canonical_urls() {
        for (a, b) in [
            ("https://relay.example.org", "https://relay.example.org"),
            (
                "https://RELAY.example.org:443/",
                "https://relay.example.org",
            ),
            ("HTTPS://relay.example.org.", "https://relay.example.org"),
            (
                "https://relay.example.org/a/../b//",
                "https://relay.example.org/b",
            ),
            ("http://127.0.0.1:80", "http://127.0.0.1"),
            ("http://127.0.0.1:3340/", "http://127.0.0.1:3340"),
            (
                "https://relay.example.org:8443",
                "https://relay.example.org:8443",
            ),
            ("http://[::1]:3340", "http://[::1]:3340"),
        ] {
            assert_eq!(canonical_relay_url(a).unwrap(), b, "{a}");
        }
        assert!(matches!(
            canonical_relay_url("wss://x"),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            canonical_relay_url("nope"),
            Err(UrlError::Parse { .. })
        ));
        assert!(matches!(
            canonical_relay_url("https://u:p@x"),
            Err(UrlError::Userinfo)
        ));
        assert!(matches!(
            canonical_relay_url("https://x/?a=1"),
            Err(UrlError::QueryOrFragment)
        ));
        assert!(matches!(
            canonical_relay_url("https://x/#f"),
            Err(UrlError::QueryOrFragment)
        ));
    }

    #[test]
    fn signed_token_verifies_under_any_spelling_of_the_url() {
        let k = keys();
        let token = sign_at(
            &k,
            "https://RELAY.example.org:443/",
            &endpoint(1),
            now(),
            DEFAULT_TTL,
        )
        .unwrap();
        let adm = check(&token).unwrap();
        assert_eq!(adm.pubkey, k.public_key());
        assert_eq!(adm.expires_at, now() + DEFAULT_TTL);
        // Still fine just before expiry and within skew of a slow clock.
        let late = now() + DEFAULT_TTL - Duration::from_secs(1);
        assert!(verify(&token, URL, &endpoint(1), late, DEFAULT_MAX_SKEW).is_ok());
        let slow = now() - Duration::from_secs(30);
        assert!(
            verify(
                &token,
                "https://relay.example.org.",
                &endpoint(1),
                slow,
                DEFAULT_MAX_SKEW
            )
            .is_ok()
        );
        // The real clock signs too.
        let fresh = sign(&k, URL, &endpoint(1), DEFAULT_TTL).unwrap();
        assert!(
            verify(
                &fresh,
                URL,
                &endpoint(1),
                SystemTime::now(),
                DEFAULT_MAX_SKEW
            )
            .is_ok()
        );
    }

    #[test]
    fn ttl_limits_when_signing() {
        let k = keys();
        assert!(matches!(
            sign(&k, URL, &endpoint(1), Duration::ZERO),
            Err(SignError::Ttl { .. })
        ));
        assert!(matches!(
            sign(&k, URL, &endpoint(1), MAX_TTL + Duration::from_secs(1)),
            Err(SignError::Ttl { .. })
        ));
        assert!(sign(&k, URL, &endpoint(1), MAX_TTL).is_ok());
        assert!(matches!(
            sign(&k, "ftp://x", &endpoint(1), DEFAULT_TTL),
            Err(SignError::Url(_))
        ));
    }

    #[test]
    fn expired_is_refused() {
        let token = sign_at(
            &keys(),
            URL,
            &endpoint(1),
            now() - Duration::from_secs(7200),
            Duration::from_secs(3600),
        )
        .unwrap();
        assert!(matches!(check(&token), Err(AdmissionError::Expired { .. })));
        // Expiry is exclusive: at the second it names, it is over.
        let token = sign_at(
            &keys(),
            URL,
            &endpoint(1),
            now() - Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(matches!(check(&token), Err(AdmissionError::Expired { .. })));
    }

    #[test]
    fn future_dated_beyond_skew_is_refused() {
        let ahead = |secs| {
            sign_at(
                &keys(),
                URL,
                &endpoint(1),
                now() + Duration::from_secs(secs),
                DEFAULT_TTL,
            )
            .unwrap()
        };
        assert!(check(&ahead(DEFAULT_MAX_SKEW.as_secs())).is_ok());
        assert!(matches!(
            check(&ahead(DEFAULT_MAX_SKEW.as_secs() + 1)),
            Err(AdmissionError::FromTheFuture { ahead_secs: 61 })
        ));
    }

    #[test]
    fn absurdly_long_expiry_is_refused() {
        let far = (t0() + MAX_TTL.as_secs() + DEFAULT_MAX_SKEW.as_secs() + 1).to_string();
        assert!(matches!(
            check(&token_with(HTTP_AUTH, t0(), good_tags(&far))),
            Err(AdmissionError::TooLong { .. })
        ));
        let edge = (t0() + MAX_TTL.as_secs()).to_string();
        assert!(check(&token_with(HTTP_AUTH, t0(), good_tags(&edge))).is_ok());
        // A verifier may be stricter than the format's cap.
        let token = sign_at(&keys(), URL, &endpoint(1), now(), Duration::from_secs(7200)).unwrap();
        let v = Verifier::new(URL, DEFAULT_MAX_SKEW)
            .unwrap()
            .max_ttl(Duration::from_secs(3600));
        assert!(matches!(
            v.verify(&token, &endpoint(1), now()),
            Err(AdmissionError::TooLong { .. })
        ));
    }

    #[test]
    fn wrong_url_is_refused() {
        for other in [
            "https://other.example.org",
            "http://relay.example.org",
            "https://relay.example.org:8443",
            "https://relay.example.org/x",
        ] {
            let token = sign_at(&keys(), other, &endpoint(1), now(), DEFAULT_TTL).unwrap();
            assert_eq!(check(&token), Err(AdmissionError::WrongUrl), "{other}");
        }
        // A `u` tag that is not canonical is not silently fixed by the verifier.
        let exp = (t0() + 60).to_string();
        let mut tags = good_tags(&exp);
        tags[0][1] = "https://RELAY.example.org/".into();
        assert_eq!(
            check(&token_with(HTTP_AUTH, t0(), tags)),
            Err(AdmissionError::WrongUrl)
        );
    }

    #[test]
    fn wrong_method_is_refused() {
        let exp = (t0() + 60).to_string();
        for m in ["POST", "get", ""] {
            let mut tags = good_tags(&exp);
            tags[1][1] = m.into();
            assert_eq!(
                check(&token_with(HTTP_AUTH, t0(), tags)),
                Err(AdmissionError::WrongMethod),
                "{m}"
            );
        }
    }

    #[test]
    fn wrong_kind_is_refused() {
        let exp = (t0() + 60).to_string();
        for kind in [1, 27234, 27236, 13534] {
            assert_eq!(
                check(&token_with(kind, t0(), good_tags(&exp))),
                Err(AdmissionError::WrongKind { kind })
            );
        }
    }

    #[test]
    fn endpoint_of_another_endpoint_is_refused() {
        let token = sign_at(&keys(), URL, &endpoint(2), now(), DEFAULT_TTL).unwrap();
        assert_eq!(check(&token), Err(AdmissionError::WrongEndpoint));
        // Uppercase hex of the right endpoint is not the canonical spelling.
        let exp = (t0() + 60).to_string();
        let mut tags = good_tags(&exp);
        tags[2][1] = tags[2][1].to_uppercase();
        assert_eq!(
            check(&token_with(HTTP_AUTH, t0(), tags)),
            Err(AdmissionError::WrongEndpoint)
        );
    }

    #[test]
    fn missing_duplicate_and_malformed_tags_are_refused() {
        let exp = (t0() + 60).to_string();
        for (i, name) in ["u", "method", ENDPOINT_TAG, "expiration"]
            .into_iter()
            .enumerate()
        {
            let mut tags = good_tags(&exp);
            tags.remove(i);
            assert_eq!(
                check(&token_with(HTTP_AUTH, t0(), tags)),
                Err(AdmissionError::MissingTag { tag: name })
            );
            let mut tags = good_tags(&exp);
            tags.push(tags[i].clone());
            assert_eq!(
                check(&token_with(HTTP_AUTH, t0(), tags)),
                Err(AdmissionError::DuplicateTag { tag: name })
            );
            let mut tags = good_tags(&exp);
            tags[i].truncate(1);
            assert_eq!(
                check(&token_with(HTTP_AUTH, t0(), tags)),
                Err(AdmissionError::MissingTag { tag: name })
            );
        }
        for bad in [
            "",
            "-5",
            "+100",
            "1e9",
            "0x10",
            " 100",
            "0100",
            "99999999999999999999",
        ] {
            assert_eq!(
                check(&token_with(HTTP_AUTH, t0(), good_tags(bad))),
                Err(AdmissionError::BadExpiration),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_signature_is_refused() {
        let token = sign_at(&keys(), URL, &endpoint(1), now(), DEFAULT_TTL).unwrap();
        let mut ev = Event::from_json(ENGINE.decode(&token).unwrap()).unwrap();
        // Signature of another event: the id still matches, the signature does not.
        let other = Event::from_json(
            ENGINE
                .decode(sign_at(&ev_keys_other(), URL, &endpoint(1), now(), DEFAULT_TTL).unwrap())
                .unwrap(),
        )
        .unwrap();
        ev.sig = other.sig;
        assert_eq!(
            check(&encode(&ev).unwrap()),
            Err(AdmissionError::BadSignature)
        );
        // Someone else's key claiming to be the signer.
        let mut ev = Event::from_json(ENGINE.decode(&token).unwrap()).unwrap();
        ev.pubkey = ev_keys_other().public_key();
        assert_eq!(
            check(&encode(&ev).unwrap()),
            Err(AdmissionError::BadSignature)
        );
    }

    fn ev_keys_other() -> Keys {
        Keys::generate()
    }

    #[test]
    fn tampered_tags_are_refused() {
        let token = sign_at(&keys(), URL, &endpoint(1), now(), Duration::from_secs(60)).unwrap();
        let json = String::from_utf8(ENGINE.decode(&token).unwrap()).unwrap();
        // Stretch the expiry: every check but the signature passes.
        let exp = (t0() + 60).to_string();
        let longer = (t0() + 3600).to_string();
        let tampered = json.replace(&exp, &longer);
        assert_ne!(tampered, json);
        assert_eq!(
            check(&ENGINE.encode(&tampered)),
            Err(AdmissionError::BadSignature)
        );
        // Rebind to another endpoint.
        let other = endpoint_hex(&endpoint(2));
        let tampered = json.replace(&endpoint_hex(&endpoint(1)), &other);
        let res = verify(
            &ENGINE.encode(&tampered),
            URL,
            &endpoint(2),
            now(),
            DEFAULT_MAX_SKEW,
        );
        assert_eq!(res, Err(AdmissionError::BadSignature));
        // An extra tag.
        let mut ev = Event::from_json(json.as_bytes()).unwrap();
        let mut tags = ev.tags.to_vec();
        tags.push(tag(&["x", "y"]));
        ev.tags = nostr::Tags::from_list(tags);
        assert_eq!(
            check(&encode(&ev).unwrap()),
            Err(AdmissionError::BadSignature)
        );
        // The untouched token is fine (so the refusals above are the tampering).
        assert!(check(&token).is_ok());
    }

    #[test]
    fn encoding_refusals() {
        let token = sign_at(&keys(), URL, &endpoint(1), now(), DEFAULT_TTL).unwrap();
        assert_eq!(check(""), Err(AdmissionError::Empty));
        for ws in [" ", "\n", "\t", "\r"] {
            let mut t = token.clone();
            t.insert_str(t.len() / 2, ws);
            assert!(matches!(
                check(&t),
                Err(AdmissionError::NotBase64 {
                    reason: "contains whitespace"
                })
            ));
            assert!(matches!(
                check(&format!("{token}{ws}")),
                Err(AdmissionError::NotBase64 { .. })
            ));
        }
        assert!(matches!(
            check("not base64!"),
            Err(AdmissionError::NotBase64 { .. })
        ));
        // URL-safe alphabet, missing padding.
        let urlsafe =
            base64::engine::general_purpose::URL_SAFE.encode(ENGINE.decode(&token).unwrap());
        if urlsafe != token {
            assert!(matches!(
                check(&urlsafe),
                Err(AdmissionError::NotBase64 { .. })
            ));
        }
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"{\"a\":1}");
        assert!(matches!(
            check(&unpadded),
            Err(AdmissionError::NotBase64 { .. })
        ));
        // Base64 of something that is not an event.
        for junk in ["{}", "[]", "null", "{\"kind\":27235}", "\u{0}"] {
            assert!(
                matches!(
                    check(&ENGINE.encode(junk)),
                    Err(AdmissionError::NotEvent { .. })
                ),
                "{junk}"
            );
        }
        // Over the cap, before any decoding.
        let huge = "A".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            check(&huge),
            Err(AdmissionError::TooLarge {
                len: MAX_TOKEN_BYTES + 1,
                max: MAX_TOKEN_BYTES
            })
        );
        // Just under the cap is decoded (and refused for what it is).
        let big = ENGINE.encode(vec![b' '; MAX_TOKEN_BYTES / 4 * 3 - 3]);
        assert!(big.len() <= MAX_TOKEN_BYTES);
        assert!(matches!(check(&big), Err(AdmissionError::NotEvent { .. })));
    }

    #[test]
    fn messages_never_repeat_the_token() {
        let token = sign_at(&keys(), URL, &endpoint(2), now(), DEFAULT_TTL).unwrap();
        let err = check(&token).unwrap_err().to_string();
        assert!(!err.contains(&token[..16]), "{err}");
        let junk = ENGINE.encode("{\"kind\":\"secret-value\"}");
        let err = check(&junk).unwrap_err().to_string();
        assert!(!err.contains("secret-value"), "{err}");
    }
}
