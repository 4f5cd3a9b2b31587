//! TLS for the local targets: a certificate authority made at test time, a server certificate
//! it signs for 127.0.0.1 and for [`TLS_NAME`], and a listener that serves over TLS with it.
//! Nothing is trusted unless a test hands the authority's certificate to the host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// The name the server certificate holds besides 127.0.0.1: a name no resolver knows, so a
/// request for it arrives only through a proxy that carries it to the target.
pub const TLS_NAME: &str = "secure.example.test";

/// How long a client may take over its handshake before the listener drops it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate authority and the server certificate it signed.
pub struct TestCa {
    /// The authority's certificate, PEM: the file `outbound.ca_certificates` names.
    pub pem: String,
    server: Arc<ServerConfig>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty names are valid");
        // A name of its own, as two real authorities have: a certificate names its issuer.
        let name = format!("ignareo test authority {:08x}", rand::random::<u32>());
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let authority = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key pair"))
            .expect("the authority signs itself");

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), TLS_NAME.to_owned()]).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, TLS_NAME);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("a key pair");
        let certificate = params.signed_by(&key, &authority).expect("the authority signs the server certificate");

        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("the key matches the certificate");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestCa { pem: authority.pem(), server: Arc::new(server) }
    }

    /// A listener on 127.0.0.1 that serves TLS with the server certificate.
    pub async fn listen(&self) -> TlsListener {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(self.server.clone()),
            failed_handshakes: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Accepts connections whose TLS handshake completes; the others (a client that refuses the
/// certificate, or never finishes) are counted and dropped.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    failed_handshakes: Arc<AtomicU64>,
}

impl TlsListener {
    /// Handshakes that did not complete, so far.
    pub fn failed_handshakes(&self) -> Arc<AtomicU64> {
        self.failed_handshakes.clone()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else {
                // Out of descriptors or the like: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, address),
                _ => {
                    self.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
