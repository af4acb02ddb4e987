//! The identity platform's check of a certificate credential: a JWT client
//! assertion (learn.microsoft.com/entra/identity-platform/certificate-credentials)
//! signed with the key of [`TEST_CLIENT_CERTIFICATE`], the certificate the
//! stand-in's app registration holds. Checked as Entra documents it:
//! `alg` PS256 and `x5t#S256` the certificate's SHA-256 thumbprint in the
//! header; `aud` the token endpoint, `iss` = `sub` = the client id, an
//! unexpired `exp` at most 10 minutes after `nbf`, a `jti` never seen
//! before; the PSS signature over `header.claims`.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use aws_lc_rs::signature::{KeyPair, RSA_PSS_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A throwaway key pair and self-signed certificate (public on purpose: it
/// protects nothing). `ENTRA_CLIENT_CERTIFICATE` of [`crate::GraphStandIn::env_with_certificate`].
pub const TEST_CLIENT_CERTIFICATE: &str = include_str!("test-client-certificate.pem");

/// Why an assertion is refused (`None`: accepted, its `jti` now used).
pub(crate) fn refusal(
    assertion: &str,
    client_id: &str,
    audience: &str,
    now_s: i64,
    seen: &Mutex<HashSet<String>>,
) -> Option<&'static str> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Some("not a JWT");
    };
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(h), Some(c)) = (decode(header), decode(claims)) else {
        return Some("undecodable header or claims");
    };
    let (public, thumbprint) = &*REGISTERED;
    if h["alg"] != "PS256" || h["typ"] != "JWT" {
        return Some("alg must be PS256, typ JWT");
    }
    if h["x5t#S256"].as_str() != Some(thumbprint.as_str()) {
        return Some("x5t#S256 names no certificate of the app");
    }
    if c["aud"] != audience || c["iss"] != client_id || c["sub"] != client_id {
        return Some("aud, iss or sub is wrong");
    }
    let (Some(nbf), Some(exp)) = (c["nbf"].as_i64(), c["exp"].as_i64()) else {
        return Some("nbf and exp are required");
    };
    if exp <= now_s || nbf > now_s + 300 || exp - nbf > 600 {
        return Some("expired, not yet valid, or valid for over 10 minutes");
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return Some("undecodable signature");
    };
    let signed = format!("{header}.{claims}");
    if UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, public.as_slice())
        .verify(signed.as_bytes(), &signature)
        .is_err()
    {
        return Some("the signature does not verify");
    }
    let Some(jti) = c["jti"].as_str().filter(|j| !j.is_empty()) else {
        return Some("jti is required");
    };
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !seen.insert(jti.to_owned()) {
        return Some("this jti was used before (a replayed assertion)");
    }
    None
}

/// The registered certificate's public key (PKCS#1 DER) and thumbprint,
/// derived once.
static REGISTERED: LazyLock<(Vec<u8>, String)> = LazyLock::new(registered);

fn registered() -> (Vec<u8>, String) {
    let pem = TEST_CLIENT_CERTIFICATE.as_bytes();
    let key = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(PrivateKeyDer::Pkcs8(der)) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok(),
        _ => None,
    };
    let public = key
        .map(|k| k.public_key().as_ref().to_vec())
        .unwrap_or_default();
    let thumbprint = CertificateDer::from_pem_slice(pem)
        .map(|cert| URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref())))
        .unwrap_or_default();
    (public, thumbprint)
}
