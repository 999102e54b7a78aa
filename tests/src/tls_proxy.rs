//! [`TlsProxy`]: HTTPS in front of a plain-HTTP endpoint (moto), with a certificate for
//! `127.0.0.1` signed by a CA made for the test — a private CA, which no public root store
//! trusts. It counts the handshakes it completed and those the client broke off.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
pub struct TlsProxy {
    addr: SocketAddr,
    ca_file: tempfile::NamedTempFile,
    completed: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl TlsProxy {
    /// Listens on 127.0.0.1 and forwards every connection whose handshake completes to
    /// `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> TlsProxy {
        let upstream: SocketAddr =
            upstream.trim_start_matches("http://").trim_end_matches('/').parse().expect("upstream is http://IP:port");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "vicibridge test private CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();

        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(ca.as_ref().pem().as_bytes()).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (completed, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (done, broken) = (Arc::clone(&completed), Arc::clone(&failed));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, done, broken) = (acceptor.clone(), Arc::clone(&done), Arc::clone(&broken));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        broken.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    done.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                    }
                });
            }
        });
        TlsProxy { addr, ca_file, completed, failed }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA's certificate (PEM), for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> String {
        self.ca_file.path().display().to_string()
    }

    /// Handshakes completed (then forwarded upstream).
    pub fn handshakes(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// Handshakes the client broke off (e.g. it did not trust the certificate).
    pub fn refused_handshakes(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}
