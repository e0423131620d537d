//! The node's side: "does this relay admit me?" — dial a relay once with an
//! admission token and report admitted or refused (with the relay's
//! reason), within a time limit. Used by `atoll relay check`.

use std::{path::Path, time::Duration};

use iroh::{RelayUrl, SecretKey, dns::DnsResolver};
use iroh_relay::{
    client::{ClientBuilder, ConnectError},
    protos::handshake,
    tls::{CaTlsConfig, default_provider},
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

/// What the relay said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The relay admitted the endpoint.
    Admitted,
    /// The relay refused it, saying why.
    Refused {
        /// The relay's reason.
        reason: String,
    },
}

/// The check could not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// No answer within the time limit.
    #[error("no answer from the relay within {0:?}")]
    Timeout(Duration),
    /// The connection failed before the relay decided (DNS, TCP, TLS, HTTP).
    #[error("cannot reach the relay: {reason}")]
    Connect {
        /// What failed.
        reason: String,
    },
    /// The extra CA certificate file is unusable.
    #[error("CA certificate file {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Root certificates: Mozilla's, plus the PEM certificates in `extra_ca`
/// (for a relay with a private or self-signed certificate).
pub fn roots(extra_ca: Option<&Path>) -> Result<CaTlsConfig, CheckError> {
    let Some(path) = extra_ca else {
        return Ok(CaTlsConfig::default());
    };
    let ca_err = |reason: String| CheckError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_err("no certificates in the file".into()));
    }
    Ok(CaTlsConfig::default().with_extra_roots(certs))
}

/// Dials the relay at `url` as `secret`'s endpoint with `token`, and hangs
/// up once the relay has decided.
pub async fn check_admission(
    url: &RelayUrl,
    secret: &SecretKey,
    token: &str,
    roots: CaTlsConfig,
    timeout: Duration,
) -> Result<CheckOutcome, CheckError> {
    let tls = roots
        .client_config(default_provider())
        .map_err(|e| CheckError::Connect {
            reason: format!("TLS setup: {e}"),
        })?;
    let resolver = DnsResolver::builder()
        .with_system_defaults()
        .disable_fallback()
        .build();
    let builder = ClientBuilder::new(url.clone(), secret.clone(), resolver)
        .tls_client_config(tls)
        .auth_token(token);
    match tokio::time::timeout(timeout, builder.connect()).await {
        Err(_) => Err(CheckError::Timeout(timeout)),
        Ok(Ok(_client)) => Ok(CheckOutcome::Admitted),
        Ok(Err(ConnectError::Handshake {
            source: handshake::Error::ServerDeniedAuth { reason, .. },
            ..
        })) => Ok(CheckOutcome::Refused { reason }),
        Ok(Err(e)) => Err(CheckError::Connect {
            reason: format!("{e:#}"),
        }),
    }
}
