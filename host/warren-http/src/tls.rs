//! The rustls configurations: rustls on ring, never the system's OpenSSL
//! or certificate store.
//!
//! [`public_config`] verifies servers against the bundled public roots
//! (webpki-roots). [`custom_config`] serves option `tls`: `ca` replaces the
//! roots, `cert`+`key` add a client identity, `server_name` verifies the
//! certificate against another name, and `insecure_skip_verify` accepts any
//! certificate while still checking the handshake signatures (the caller
//! checks the `http_client.insecure_tls` grant before using it). Both offer
//! h2 and http/1.1 by ALPN.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WantsClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme};
use warren_core::ProcError;

use crate::TlsOptions;
use crate::error::{internal, invalid};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> Result<ConfigBuilder<ClientConfig, rustls::WantsVerifier>, ProcError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| internal(format!("TLS setup failed: {e}")))
}

fn with_alpn(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The bundled public roots.
fn public_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The configuration of requests without option `tls`.
pub(crate) fn public_config() -> Result<ClientConfig, ProcError> {
    Ok(with_alpn(
        builder()?
            .with_root_certificates(public_roots())
            .with_no_client_auth(),
    ))
}

/// Longest `tls.ca`, `tls.cert` or `tls.key` text: the whole Mozilla
/// bundle of public roots is about 220 KB. Unbounded, a 27 MB `ca` was
/// parsed on the process's worker (148 ms) and again, for every request,
/// on the shared I/O runtime, where 8 processes of one tenant stalled
/// another tenant's requests for seconds.
pub const MAX_TLS_PEM_BYTES: usize = 512 << 10;

/// `INVALID` if the options' PEM does not parse or `cert`/`key` come
/// alone, or one of them is longer than [`MAX_TLS_PEM_BYTES`] (checked
/// first, before any is parsed).
pub(crate) fn validate(opts: &TlsOptions) -> Result<(), ProcError> {
    for (name, text) in [("ca", &opts.ca), ("cert", &opts.cert), ("key", &opts.key)] {
        if let Some(text) = text
            && text.len() > MAX_TLS_PEM_BYTES
        {
            return Err(invalid(format!(
                "tls.{name} of {} bytes is longer than {MAX_TLS_PEM_BYTES} bytes",
                text.len()
            )));
        }
    }
    roots(opts)?;
    identity(opts)?;
    server_name(opts)?;
    Ok(())
}

/// The configuration of a request with option `tls` (already validated).
pub(crate) fn custom_config(opts: &TlsOptions) -> Result<ClientConfig, ProcError> {
    let roots = Arc::new(roots(opts)?);
    let verifier: Arc<dyn ServerCertVerifier> = if opts.insecure_skip_verify {
        Arc::new(AcceptAny {
            algorithms: provider().signature_verification_algorithms,
        })
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| invalid(format!("tls.ca: {e}")))?;
        match server_name(opts)? {
            Some(name) => Arc::new(OtherName {
                inner: webpki,
                name,
            }),
            None => webpki,
        }
    };
    let wants_cert = builder()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(with_alpn(with_identity(wants_cert, opts)?))
}

fn with_identity(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    opts: &TlsOptions,
) -> Result<ClientConfig, ProcError> {
    match identity(opts)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid(format!("tls.cert/tls.key: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `tls.ca` as a root store, or the public roots.
fn roots(opts: &TlsOptions) -> Result<RootCertStore, ProcError> {
    let Some(ca) = &opts.ca else {
        return Ok(public_roots());
    };
    let mut store = RootCertStore::empty();
    for cert in certificates(ca, "tls.ca")? {
        store
            .add(cert)
            .map_err(|e| invalid(format!("tls.ca: {e}")))?;
    }
    Ok(store)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// `tls.cert` and `tls.key`, both or neither.
fn identity(opts: &TlsOptions) -> Result<Option<Identity>, ProcError> {
    match (&opts.cert, &opts.key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "tls.cert")?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|_| invalid("tls.key holds no PEM private key"))?;
            Ok(Some((chain, key)))
        }
        _ => Err(invalid("tls.cert and tls.key go together")),
    }
}

/// The certificates of a PEM string; `INVALID` if it holds none or a bad one.
fn certificates(pem: &str, option: &str) -> Result<Vec<CertificateDer<'static>>, ProcError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{option} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!("{option} holds no PEM certificate")));
    }
    Ok(certs)
}

fn server_name(opts: &TlsOptions) -> Result<Option<ServerName<'static>>, ProcError> {
    opts.server_name
        .as_ref()
        .map(|name| {
            ServerName::try_from(name.clone())
                .map_err(|_| invalid(format!("tls.server_name {name:?} is not a DNS name or IP")))
        })
        .transpose()
}

/// Verifies the chain against `name` instead of the URL's host.
#[derive(Debug)]
struct OtherName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for OtherName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate, but a valid handshake signature
/// by its key.
#[derive(Debug)]
struct AcceptAny {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use warren_core::ErrorKind;

    use super::*;

    #[test]
    fn configs_build() {
        let public = public_config().expect("public config");
        assert_eq!(public.alpn_protocols.len(), 2);
        let opts = TlsOptions {
            insecure_skip_verify: true,
            server_name: Some("internal.example".into()),
            ..TlsOptions::default()
        };
        validate(&opts).expect("valid");
        custom_config(&opts).expect("insecure config");
        let named = TlsOptions {
            server_name: Some("internal.example".into()),
            ..TlsOptions::default()
        };
        custom_config(&named).expect("named config");
    }

    #[test]
    fn refuses_bad_pem() {
        for opts in [
            TlsOptions {
                ca: Some("not pem".into()),
                ..TlsOptions::default()
            },
            TlsOptions {
                ca: Some("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".into()),
                ..TlsOptions::default()
            },
            TlsOptions {
                cert: Some("x".into()),
                ..TlsOptions::default()
            },
            TlsOptions {
                server_name: Some("bad name!".into()),
                ..TlsOptions::default()
            },
        ] {
            let err = validate(&opts).expect_err("invalid");
            assert_eq!(err.kind, ErrorKind::Invalid, "{}", err.message);
        }
    }

    #[test]
    fn refuses_pem_past_the_bound_before_parsing_it() {
        // Valid-looking but never parsed: the length decides first.
        let long = "-----BEGIN CERTIFICATE-----\n".repeat(MAX_TLS_PEM_BYTES / 28 + 1);
        for opts in [
            TlsOptions {
                ca: Some(long.clone()),
                ..TlsOptions::default()
            },
            TlsOptions {
                cert: Some(long.clone()),
                key: Some("k".into()),
                ..TlsOptions::default()
            },
        ] {
            let err = validate(&opts).expect_err("too long");
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert!(
                err.message.contains("bytes is longer than 524288 bytes"),
                "{}",
                err.message
            );
        }
    }
}
