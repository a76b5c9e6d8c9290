//! TLS to the broker, PostgreSQL and the catalog, through TLS-terminating proxies in front of the
//! machine's own RabbitMQ and PostgreSQL (whose configuration the tests leave alone), with
//! certificates from an authority each test makes.

use crate::helpers::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority of one test, and the directory its files are written to.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    /// The authority's certificate, written once.
    file: PathBuf,
    dir: SqliteDir,
}

/// A server certificate and its key, in PEM.
struct ServerCertificate {
    chain: String,
    key: String,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "live-gallery test CA");
        let key = KeyPair::generate().expect("a CA key");
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        let dir = SqliteDir::new();
        let file = dir.0.join("ca.pem");
        std::fs::write(&file, &pem).expect("write the CA file");
        Self {
            issuer: Issuer::new(params, key),
            pem,
            file,
            dir,
        }
    }

    /// The authority's certificate file.
    fn file(&self) -> PathBuf {
        self.file.clone()
    }

    /// A certificate for 127.0.0.1 and localhost; `expired` makes one whose validity ended.
    fn server_certificate(&self, expired: bool) -> ServerCertificate {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        if expired {
            params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
            params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        let key = KeyPair::generate().expect("a server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        ServerCertificate {
            chain: certificate.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl TestCa {
    /// A client certificate of this authority; writes it and its key to files, returns their paths.
    fn client_certificate_files(&self) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "live-gallery catalog");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("a client key");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        let (cert_path, key_path) = (
            self.dir.0.join("client.pem"),
            self.dir.0.join("client-key.pem"),
        );
        std::fs::write(&cert_path, certificate.pem()).expect("write the client certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the client key");
        (cert_path, key_path)
    }

    /// The authority as rustls roots, for a server that checks client certificates.
    fn roots(&self) -> rustls::RootCertStore {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(certificate.expect("PEM")).expect("a root");
        }
        roots
    }
}

/// What the proxy expects before the TLS handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Preamble {
    /// TLS from the first byte (AMQPS, HTTPS).
    None,
    /// PostgreSQL's SSLRequest, answered `S`, then TLS; the server behind sees plain startup.
    Postgres,
}

/// A TLS-terminating proxy to `upstream`: what a managed service's TLS endpoint looks like.
struct TlsProxy {
    address: SocketAddr,
    /// Handshakes completed: proof that clients came through TLS.
    handshakes: Arc<AtomicUsize>,
}

impl TlsProxy {
    async fn start(
        upstream: SocketAddr,
        certificate: &ServerCertificate,
        preamble: Preamble,
    ) -> Self {
        Self::start_with(upstream, certificate, preamble, None).await
    }

    /// A proxy that also asks every client for a certificate of `clients`, when given.
    async fn start_with(
        upstream: SocketAddr,
        certificate: &ServerCertificate,
        preamble: Preamble,
        clients: Option<&TestCa>,
    ) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(certificate.chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM chain");
        let key = PrivateKeyDer::from_pem_slice(certificate.key.as_bytes()).expect("PEM key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match clients {
            Some(clients) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(clients.roots()),
                    provider,
                )
                .build()
                .expect("a client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, key)
            .expect("a server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("bound");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    if preamble == Preamble::Postgres {
                        let mut request = [0u8; 8];
                        if client.read_exact(&mut request).await.is_err()
                            || request != [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
                        {
                            return;
                        }
                        if client.write_all(b"S").await.is_err() {
                            return;
                        }
                    }
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                    }
                });
            }
        });
        Self {
            address,
            handshakes,
        }
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

/// Why the app with `options` does not start, as its log line says it.
async fn start_error(options: TestOptions) -> String {
    match try_spawn_app_with(options).await {
        Ok(_) => panic!("the start stops"),
        Err(err) => server::error::chain(&err).to_string(),
    }
}

/// The test broker's URL as `amqps://` through `proxy`.
fn amqps_through(proxy: &TlsProxy) -> String {
    amqp_url().replacen("amqp://", "amqps://", 1).replacen(
        "127.0.0.1:5672",
        &proxy.address.to_string(),
        1,
    )
}

const RABBITMQ: &str = "127.0.0.1:5672";
const POSTGRES: &str = "127.0.0.1:5432";

#[tokio::test]
async fn a_like_travels_over_amqps_end_to_end() {
    let ca = TestCa::new();
    let proxy = TlsProxy::start(
        RABBITMQ.parse().unwrap(),
        &ca.server_certificate(false),
        Preamble::None,
    )
    .await;
    let app = spawn_app_with(TestOptions {
        amqp_url: Some(amqps_through(&proxy)),
        extra_args: vec![format!("--amqp-ca-file={}", ca.file().display())],
        ..TestOptions::default()
    })
    .await;

    // Catalog → web: the product event reaches the read model; web → catalog: the like event
    // reaches the catalog; catalog → web again: the new count reaches the gallery.
    let id = app.create_visible_product("Over TLS").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the catalog counts the like", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    wait_until("the gallery shows the catalog's count", || async {
        visitor
            .products()
            .await
            .iter()
            .any(|p| p["id"] == id && p["likes"] == 1)
    })
    .await;
    assert!(
        proxy.handshakes() >= 2,
        "the publisher and the consumers connected through TLS ({} handshakes)",
        proxy.handshakes()
    );
    assert!(app.miscounted().await.is_empty());
}

#[tokio::test]
async fn a_broker_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let ca = TestCa::new();
    let proxy = TlsProxy::start_with(
        RABBITMQ.parse().unwrap(),
        &ca.server_certificate(false),
        Preamble::None,
        Some(&ca),
    )
    .await;
    // Without a client certificate the broker's endpoint refuses the handshake: the start stops.
    let message = start_error(TestOptions {
        amqp_url: Some(amqps_through(&proxy)),
        extra_args: vec![format!("--amqp-ca-file={}", ca.file().display())],
        ..TestOptions::default()
    })
    .await;
    assert!(
        message.starts_with("AMQP_URL: TLS to the broker failed"),
        "{message}"
    );

    let (cert, key) = ca.client_certificate_files();
    let app = spawn_app_with(TestOptions {
        amqp_url: Some(amqps_through(&proxy)),
        extra_args: vec![
            format!("--amqp-ca-file={}", ca.file().display()),
            format!("--amqp-client-cert-file={}", cert.display()),
            format!("--amqp-client-key-file={}", key.display()),
        ],
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Client certificate").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the catalog counts the like", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    assert!(
        proxy.handshakes() >= 2,
        "connections went through the proxy"
    );
}

#[tokio::test]
async fn a_broker_certificate_that_does_not_verify_stops_the_start() {
    let ca = TestCa::new();
    for (certificate, ca_file, why) in [
        (
            ca.server_certificate(false),
            None,
            "an authority the system does not trust",
        ),
        (
            ca.server_certificate(true),
            Some(ca.file()),
            "an expired certificate",
        ),
    ] {
        let proxy = TlsProxy::start(RABBITMQ.parse().unwrap(), &certificate, Preamble::None).await;
        let message = start_error(TestOptions {
            amqp_url: Some(amqps_through(&proxy)),
            extra_args: ca_file
                .map(|file| vec![format!("--amqp-ca-file={}", file.display())])
                .unwrap_or_default(),
            ..TestOptions::default()
        })
        .await;
        assert!(
            message.starts_with("AMQP_URL: TLS to the broker failed"),
            "{why}: {message}"
        );
    }
}

#[tokio::test]
async fn amqps_to_a_broker_without_tls_stops_the_start() {
    let message = start_error(TestOptions {
        amqp_url: Some(amqp_url().replacen("amqp://", "amqps://", 1)),
        ..TestOptions::default()
    })
    .await;
    assert!(
        message.starts_with("AMQP_URL: TLS to the broker failed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_broker_that_is_away_is_still_waited_for_over_amqps() {
    // Nothing listens on the port: not a TLS failure, so the start goes on and retries.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let app = try_spawn_app_with(TestOptions {
        amqp_url: Some(format!("amqps://guest:guest@127.0.0.1:{port}/%2f")),
        ..TestOptions::default()
    })
    .await
    .expect("the start goes on without the broker");
    let ready: serde_json::Value = app.readyz().await.json().await.unwrap();
    assert_eq!(ready["checks"]["bus"], "unavailable");
}

/// A fresh PostgreSQL database reached through `proxy` with `sslmode=verify-full`.
async fn verified_postgres(proxy: &TlsProxy, ca_file: &std::path::Path) -> String {
    let plain = fresh_database(Engine::Postgres, &SqliteDir::new()).await;
    let name = database_name(&plain);
    format!(
        "postgres://postgres@127.0.0.1:{}/{name}?sslmode=verify-full&sslrootcert={}",
        proxy.address.port(),
        ca_file.display()
    )
}

#[tokio::test]
async fn postgres_with_verify_full_works_against_an_authority_the_test_made() {
    let ca = TestCa::new();
    let proxy = TlsProxy::start(
        POSTGRES.parse().unwrap(),
        &ca.server_certificate(false),
        Preamble::Postgres,
    )
    .await;
    let app = spawn_app_with(TestOptions {
        catalog_database: Some(verified_postgres(&proxy, &ca.file()).await),
        web_database: Some(verified_postgres(&proxy, &ca.file()).await),
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Verified").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the catalog counts the like", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    assert!(proxy.handshakes() >= 2, "both services went through TLS");
}

#[tokio::test]
async fn postgres_with_verify_full_refuses_a_certificate_of_another_authority() {
    let ours = TestCa::new();
    let theirs = TestCa::new();
    let proxy = TlsProxy::start(
        POSTGRES.parse().unwrap(),
        &theirs.server_certificate(false),
        Preamble::Postgres,
    )
    .await;
    let message = start_error(TestOptions {
        role: "catalog",
        catalog_database: Some(verified_postgres(&proxy, &ours.file()).await),
        ..TestOptions::default()
    })
    .await;
    assert!(
        message.starts_with("CATALOG_DATABASE_URL: TLS to the database failed"),
        "{message}"
    );
}

#[tokio::test]
async fn the_web_role_reaches_the_catalog_over_https() {
    let ca = TestCa::new();
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let proxy = TlsProxy::start(
        catalog.address,
        &ca.server_certificate(false),
        Preamble::None,
    )
    .await;
    let web = spawn_app_with(TestOptions {
        extra_args: vec![
            format!("--catalog-url=https://127.0.0.1:{}", proxy.address.port()),
            format!("--catalog-ca-file={}", ca.file().display()),
        ],
        ..catalog.sibling("web")
    })
    .await;
    let session = web.admin_session().await;
    let title = unique("Over HTTPS");
    let created = web
        .client
        .post(web.url("/api/create_product"))
        .header("cookie", &session)
        .form(&[
            ("title", title.as_str()),
            ("image", "https://images.example.com/https.jpg"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert_eq!(catalog.admin_products().await[0]["title"], title.as_str());
    assert!(
        proxy.handshakes() >= 1,
        "the admin command went through TLS"
    );
}
