//! TLS to the broker, the databases and the catalog: one crypto provider (ring) for the whole
//! process, the files named by the `*_CA_FILE` and client-certificate settings read once at start,
//! and telling a TLS failure (which waiting will not fix) from a broker that is away.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use std::error::Error as StdError;
use std::path::Path;

/// Makes ring the process's TLS crypto provider. rustls refuses to choose when a binary holds
/// two; this one holds only ring, and saying so keeps it that way. Idempotent.
pub fn install_crypto_provider() {
    // An error means a provider is installed already (a second application in one test
    // process): ring too, since it is the only one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The broker connection's TLS settings, for `amqps://` URLs: extra trusted certificates beside
/// the system's roots, and an optional client certificate.
pub fn amqp_tls(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<OwnedTLSConfig, String> {
    let cert_chain = ca_file
        .map(|path| read_certificates(path, "AMQP_CA_FILE"))
        .transpose()?;
    let identity =
        match (client_cert, client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let pem = read_certificates(cert, "AMQP_CLIENT_CERT_FILE")?.into_bytes();
                let key = std::fs::read(key).map_err(|err| {
                    format!("AMQP_CLIENT_KEY_FILE: cannot read {}: {err}", key.display())
                })?;
                use rustls::pki_types::pem::PemObject;
                rustls::pki_types::PrivateKeyDer::from_pem_slice(&key)
                    .map_err(|err| format!("AMQP_CLIENT_KEY_FILE: not a PEM private key: {err}"))?;
                Some(OwnedIdentity::PKCS8 { pem, key })
            }
            _ => return Err(
                "AMQP_CLIENT_CERT_FILE and AMQP_CLIENT_KEY_FILE go together: set both or neither"
                    .to_owned(),
            ),
        };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// The client the web role reaches the catalog's HTTP API with: HTTPS verified against the
/// system's roots and, when set, the certificates in `CATALOG_CA_FILE`.
pub fn catalog_http_client(
    ca_file: Option<&Path>,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().use_rustls_tls().timeout(timeout);
    if let Some(path) = ca_file {
        let pem = read_certificates(path, "CATALOG_CA_FILE")?;
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|err| format!("CATALOG_CA_FILE: {err}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|err| format!("cannot build the catalog's HTTP client: {err}"))
}

/// The PEM text of `path`, checked to hold at least one certificate; errors name `setting`.
fn read_certificates(path: &Path, setting: &str) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{setting}: cannot read {}: {err}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{setting}: {} is not PEM: {err}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{setting}: {} holds no certificate",
            path.display()
        ));
    }
    Ok(text)
}

/// The TLS failure behind `err`, if that is what it is: a certificate that does not verify, a
/// server that does not speak TLS, a handshake refused. Waiting does not fix these.
pub fn failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error's `source` skips the error it wraps: look inside it directly.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = failure(inner) {
                return Some(found);
            }
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_error_inside_io_errors_is_found() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let found = failure(&io).expect("a TLS failure");
        assert!(found.contains("UnknownIssuer"), "{found}");
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(failure(&plain), None);
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let err = amqp_tls(None, Some(Path::new("cert.pem")), None).unwrap_err();
        assert!(err.contains("AMQP_CLIENT_KEY_FILE"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = amqp_tls(Some(Path::new("/nonexistent/ca.pem")), None, None).unwrap_err();
        assert!(
            err.starts_with("AMQP_CA_FILE: cannot read /nonexistent/ca.pem"),
            "{err}"
        );
    }
}
