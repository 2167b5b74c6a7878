//! API-SSL: the real client over TLS (rustls + ring) against the simulator serving TLS, with
//! certificates made for the test: trust by CA file, trust by SHA-256 pin, and refusal of a
//! certificate that matches neither.
#![cfg(feature = "demo")]

use std::sync::Arc;
use std::time::Duration;

use hotspot_edge::routeros::client::{ApiClient, RouterError, TlsTarget};
use hotspot_edge::routeros::sim::{Model, Simulator};
use hotspot_edge::tls::{self, Trust};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    leaf_der: Vec<u8>,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["router.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        leaf_der: leaf.der().to_vec(),
        server: Arc::new(server),
    }
}

async fn sim(p: &Pki) -> Simulator {
    let mut model = Model::default();
    model.add_api_user("edge", "tls-secret-pass", "hotspot-edge");
    Simulator::start_tls("127.0.0.1:0", model, p.server.clone())
        .await
        .unwrap()
}

async fn connect(sim: &Simulator, trust: Trust, name: &str) -> Result<ApiClient, RouterError> {
    let target = TlsTarget {
        config: tls::client_config(&trust).unwrap(),
        server_name: tls::server_name(name).unwrap(),
    };
    ApiClient::connect(
        &sim.addr.to_string(),
        "edge",
        "tls-secret-pass",
        Duration::from_secs(3),
        Some(&target),
    )
    .await
}

#[tokio::test]
async fn api_ssl_with_a_ca_file() {
    let p = pki();
    let s = sim(&p).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let api = connect(&s, Trust::CaFile(ca.clone()), "router.test")
        .await
        .unwrap();
    let b = hotspot_edge::routeros::backend::RouterOsNas::new(api);
    assert_eq!(b.health().await.unwrap().identity, "sim-router");
    // The same CA, but the certificate is not for this name.
    let e = connect(&s, Trust::CaFile(ca), "other.test")
        .await
        .unwrap_err();
    assert!(matches!(e, RouterError::Unreachable(_)), "{e:?}");
}

#[tokio::test]
async fn api_ssl_with_a_pinned_certificate() {
    let p = pki();
    let s = sim(&p).await;
    let pin = tls::sha256(&p.leaf_der);
    // A pin does not depend on names: MikroTik's self-signed certificates carry none useful.
    let api = connect(&s, Trust::Pin(pin), "anything").await.unwrap();
    let b = hotspot_edge::routeros::backend::RouterOsNas::new(api);
    assert_eq!(b.health().await.unwrap().identity, "sim-router");
    let mut wrong = pin;
    wrong[0] ^= 1;
    let e = connect(&s, Trust::Pin(wrong), "anything")
        .await
        .unwrap_err();
    assert!(matches!(e, RouterError::Unreachable(_)), "{e:?}");
}

#[tokio::test]
async fn the_plain_api_does_not_talk_to_an_api_ssl_port() {
    let p = pki();
    let s = sim(&p).await;
    let e = ApiClient::connect_plain(
        &s.addr.to_string(),
        "edge",
        "tls-secret-pass",
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(e.is_link(), "{e:?}");
}

#[test]
fn config_demands_api_ssl_unless_plaintext_is_allowed() {
    let base = "[site]\nid = \"s\"\n[router]\nkind = \"routeros\"\naddress = \"192.168.88.1:8729\"\npassword = \"inline-secret\"\n";
    let e = hotspot_edge::config::parse(base, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("API-SSL needs tls-certificate-sha256"), "{e}");
    let both = format!(
        "{base}allow-plaintext = true\ntls-certificate-sha256 = \"{}\"\n",
        "AB".repeat(32)
    );
    let e = hotspot_edge::config::parse(&both, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not both"), "{e}");
    let bad = format!("{base}tls-certificate-sha256 = \"abc\"\n");
    let e = hotspot_edge::config::parse(&bad, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    let good = format!(
        "{base}tls-certificate-sha256 = \"{}\"\n",
        "AB:".repeat(31) + "AB"
    );
    let l = hotspot_edge::config::parse(&good, "c.toml").unwrap();
    assert!(hotspot_edge::routeros::tls_target(&l.config.router)
        .unwrap()
        .is_some());
    assert!(
        l.warnings.iter().any(|w| w.contains("inline")),
        "{:?}",
        l.warnings
    );
}
