//! The one HTTP/TLS client stack of a process: reqwest on rustls (aws-lc), with one TLS
//! configuration shared by every client (HubSpot, Salesforce, webhooks, VICIdial's API and,
//! through `vicibridge_aws`, the AWS SDK).
//!
//! The platform's root certificates are read and parsed once per process, not once per
//! client (each `reqwest` client with its default TLS reads them from disk again), and not at
//! client construction but by the first TLS handshake that needs them — or earlier, on a
//! thread of their own, when a process calls [`prefetch_roots`]: the handshake's first
//! round trip then overlaps with reading them. A Lambda function calls [`use_bundled_roots`]
//! instead: Mozilla's roots compiled in, nothing read at all.

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// `User-Agent` of every request the project makes.
pub const USER_AGENT: &str = concat!("vicibridge/", env!("CARGO_PKG_VERSION"));

/// A `reqwest` client builder on the process's shared TLS configuration, with the project's
/// `User-Agent`. Building a client from it reads no certificate.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().user_agent(USER_AGENT).tls_backend_preconfigured(tls_config().clone())
}

/// The process's TLS client configuration (cheap to clone: its parts are shared).
pub fn tls_config() -> &'static rustls::ClientConfig {
    static CONFIG: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(PlatformRoots { provider: Arc::clone(&provider) });
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("aws-lc supports TLS 1.2 and 1.3"))
            // rustls calls every verifier not its own "dangerous"; this one is rustls's own
            // WebPKI verifier behind a once-per-process load of its roots.
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth()
    });
    &CONFIG
}

/// Starts reading the platform's root certificates on a thread of its own, so the first TLS
/// handshake finds them ready (or waits only for the rest). Call at the start of a cold start.
pub fn prefetch_roots() {
    if VERIFIER.get().is_none() {
        // If the thread cannot be started, the first handshake reads them itself.
        let _ = std::thread::Builder::new().name("tls-roots".into()).spawn(verifier);
    }
}

/// Lambda: trust Mozilla's root program as compiled into the binary (`webpki-roots`), the set
/// Amazon Linux's own `ca-certificates` ships, instead of reading and parsing the image's
/// PEM files — about 4 ms of CPU per cold start, taken from a function that may have less
/// than one vCPU. `SSL_CERT_FILE` / `SSL_CERT_DIR` set (a private CA in a layer) still win:
/// those are read as [`prefetch_roots`] does. Call before the first handshake; the verifier
/// itself is built by that handshake, like the platform one.
pub fn use_bundled_roots() {
    if store_named(std::env::var_os("SSL_CERT_FILE"), std::env::var_os("SSL_CERT_DIR")) {
        prefetch_roots();
    } else {
        BUNDLED.store(true, Ordering::Relaxed);
    }
}

/// Whether `SSL_CERT_FILE` / `SSL_CERT_DIR` name a store (an empty value names none).
fn store_named(file: Option<OsString>, dir: Option<OsString>) -> bool {
    [file, dir].into_iter().flatten().any(|v| !v.is_empty())
}

/// Set by [`use_bundled_roots`]: [`verifier`] builds over the compiled-in roots.
static BUNDLED: AtomicBool = AtomicBool::new(false);

/// How many root certificates the platform gave (0 when none could be read: every handshake
/// then fails with an unknown-issuer error naming the server).
pub fn root_count() -> usize {
    verifier().as_ref().map_or(0, |(_, count)| *count)
}

type Loaded = Result<(Arc<WebPkiServerVerifier>, usize), String>;

static VERIFIER: OnceLock<Loaded> = OnceLock::new();

/// rustls's WebPKI verifier over the platform's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR`, or
/// the distribution's bundle) or, after [`use_bundled_roots`], the compiled-in ones; built
/// once, callers meanwhile wait for it.
fn verifier() -> &'static Loaded {
    VERIFIER.get_or_init(|| if BUNDLED.load(Ordering::Relaxed) { bundled_verifier() } else { load_verifier() })
}

fn load_verifier() -> Loaded {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(format!("no root certificate could be read from the system ({})", errors.join("; ")));
    }
    verifier_over(roots)
}

/// Already parsed at build time: no I/O, no certificate parsing.
fn bundled_verifier() -> Loaded {
    verifier_over(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
}

fn verifier_over(roots: rustls::RootCertStore) -> Loaded {
    let count = roots.len();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map(|v| (v, count))
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))
}

/// Verifies certificates with [`verifier`], loading it at the first certificate to check;
/// signatures and the schemes offered in the ClientHello need no roots.
#[derive(Debug)]
struct PlatformRoots {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PlatformRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match verifier() {
            Ok((verifier, _)) => {
                verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Err(e) => Err(rustls::Error::General(e.clone())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_clients_reads_no_certificate() {
        let _client = client_builder().build().unwrap();
        let _second = client_builder().build().unwrap();
        assert!(VERIFIER.get().is_none(), "a client build read the root certificates");
        prefetch_roots();
        // The first handshake would wait for the same load.
        assert!(root_count() > 0, "{:?}", verifier().as_ref().err());
    }

    #[test]
    fn lambda_reads_the_platform_store_only_when_told_to() {
        let named = |v: &str| Some(OsString::from(v));
        assert!(!store_named(None, None), "nothing set: the bundled roots");
        assert!(store_named(named("/opt/ca.pem"), None));
        assert!(store_named(None, named("/opt/certs")));
        assert!(!store_named(named(""), named("")), "empty values name no store");
    }

    #[test]
    fn bundled_roots_are_mozillas() {
        let (_, count) = bundled_verifier().unwrap();
        // Mozilla's program has well over a hundred roots; an empty or truncated set would
        // fail every handshake with "unknown issuer".
        assert!(count > 100, "{count}");
        let names: Vec<String> =
            webpki_roots::TLS_SERVER_ROOTS.iter().map(|r| String::from_utf8_lossy(r.subject.as_ref()).into()).collect();
        for root in ["ISRG Root X1", "Amazon Root CA 1", "DigiCert Global Root G2"] {
            assert!(names.iter().any(|n| n.contains(root)), "{root} missing from the bundled roots");
        }
    }
}
