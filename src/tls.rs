//! TLS for every client we run: RouterOS API-SSL, MQTT and the HTTPS uplink. rustls with the
//! ring provider (aws-lc does not cross-compile to MIPS).
//!
//! The router is trusted through a CA file, or by pinning the SHA-256 of its certificate, which
//! suits the self-signed certificates MikroTik routers make for themselves; the cloud (MQTT,
//! HTTPS) through a CA bundle. Handshake signatures are always verified.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

/// How the router's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates in this PEM file are the roots; the name must match `server_name`.
    CaFile(std::path::PathBuf),
    /// The router's own certificate, by the SHA-256 of its DER form.
    Pin([u8; 32]),
}

impl Trust {
    /// The trust a config gives (a CA file or a certificate pin; neither is the plain API),
    /// checked without reading the CA file: `check-config` and the daemon share it.
    pub fn from_config(
        ca_file: Option<&std::path::Path>,
        pin: Option<&str>,
    ) -> Result<Option<Trust>, String> {
        match (ca_file, pin) {
            (Some(_), Some(_)) => {
                Err("give tls-ca-file or tls-certificate-sha256, not both".into())
            }
            (Some(ca), None) => Ok(Some(Trust::CaFile(ca.to_path_buf()))),
            (None, Some(pin)) => Ok(Some(Trust::Pin(parse_pin(pin)?))),
            (None, None) => Ok(None),
        }
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn sha256(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Reads `AB:CD:...` or `abcd...`: 32 bytes in hex, colons and spaces allowed.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "bad certificate fingerprint {text:?}: expected the SHA-256 as 64 hex digits (colons allowed)"
        ));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

pub fn format_pin(pin: &[u8; 32]) -> String {
    pin.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Most bytes of a CA bundle (the system's is ~0.2 MB) or a certificate file.
const PEM_FILE_MAX: u64 = 4 * 1024 * 1024;

pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let pem =
        crate::secret::read_bounded(path, PEM_FILE_MAX).map_err(|e| format!("CA file: {e}"))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    Ok(roots)
}

/// The client configuration for API-SSL with this trust.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match trust {
        Trust::CaFile(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
        Trust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: *pin,
                provider,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("bad TLS server name {name:?}: {e}"))
}

/// Accepts exactly one certificate, whatever its issuer or names.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if sha256(end_entity.as_ref()) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::error!(
                presented = %format_pin(&sha256(end_entity.as_ref())),
                "the router presented a certificate that is not the pinned one"
            );
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config trusting the CA bundle `ca`, with a client certificate if given (MQTT
/// and the HTTPS uplink).
pub fn ca_client_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(load_roots(ca)?);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let pem = crate::secret::read_bounded(cert, PEM_FILE_MAX)
                .map_err(|e| format!("client-certificate-file: {e}"))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client-certificate-file {}: {e}", cert.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "client-certificate-file {}: no certificate in it",
                    cert.display()
                ));
            }
            let pem = crate::secret::read_bounded(key, crate::secret::SECRET_FILE_MAX)
                .map_err(|e| format!("client-key-file: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("client-key-file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// A client config that trusts nothing: reqwest needs one even for `http://` (loopback tests).
pub fn trusts_nothing() -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_pin(&hex).unwrap(), [0xAB; 32]);
        let colons = format_pin(&[0xAB; 32]);
        assert_eq!(parse_pin(&colons).unwrap(), [0xAB; 32]);
        assert!(parse_pin("abcd").unwrap_err().contains("64 hex digits"));
        assert!(parse_pin(&"ZZ".repeat(32)).is_err());
    }
}
