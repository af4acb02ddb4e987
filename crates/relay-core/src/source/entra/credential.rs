//! How the relay proves itself to the Microsoft identity platform in the
//! client-credentials grant: a client secret (`ENTRA_CLIENT_SECRET`) or a
//! certificate (`ENTRA_CLIENT_CERTIFICATE`).
//!
//! With a certificate the token request carries, instead of the secret, a
//! JWT the relay signs with the certificate's private key
//! (learn.microsoft.com/entra/identity-platform/certificate-credentials,
//! "Assertion format"; the form fields from
//! learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
//! "Second case: Access token request with a certificate"):
//! - header: `alg` `PS256`, `typ` `JWT`, `x5t#S256` the base64url SHA-256
//!   thumbprint of the certificate's DER encoding (the page's current
//!   form; its earlier one was RS256 with a SHA-1 `x5t`);
//! - claims: `aud` the token endpoint, `iss` = `sub` = the client id, `jti`
//!   a unique id, `nbf` = `iat` = now, `exp` at most 10 minutes after `nbf`;
//! - form: `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   and `client_assertion=<the JWT>`.
//!
//! A certificate never leaves the process: only its thumbprint and a
//! signature do, so a leaked request cannot be replayed after `exp`. The
//! app registration must hold the certificate's public part (Entra admin
//! center, "Certificates & secrets"; `azuread_application_certificate`).

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::Secret;

/// The `client_assertion_type` of a JWT assertion (RFC 7523).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid: the page allows 5–10 minutes after `nbf`.
pub const ASSERTION_LIFETIME_S: i64 = 5 * 60;

/// The relay's credential.
pub enum Credential {
    Secret(Secret),
    Certificate(Certificate),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(secret) => f.debug_tuple("Secret").field(secret).finish(),
            Self::Certificate(cert) => cert.fmt(f),
        }
    }
}

/// A certificate with its private key (RSA, 2048 bits or more).
pub struct Certificate {
    key: RsaKeyPair,
    thumbprint: String,
}

impl fmt::Debug for Certificate {
    // The thumbprint names the certificate; the key is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("x5t#S256", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// From PEM text holding the private key (`PRIVATE KEY`, PKCS#8, or
    /// `RSA PRIVATE KEY`, PKCS#1) and the certificate (`CERTIFICATE`), in
    /// any order — what Key Vault and `openssl` export. A value whose line
    /// breaks were written as `\n` (an environment variable typed on one
    /// line) is read too. `Err`: why not, never quoting the value.
    pub fn from_pem(pem: &str) -> Result<Self, &'static str> {
        let pem = if pem.contains('\n') {
            pem.to_owned()
        } else {
            pem.replace("\\n", "\n")
        };
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| "holds no PEM private key (PRIVATE KEY or RSA PRIVATE KEY)")?;
        let key = match key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err("holds a private key that is not RSA (Entra signs with RSA)"),
        }
        .map_err(|_| "holds a private key that is not a usable RSA key (2048 bits or more)")?;
        let cert = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| "holds no PEM CERTIFICATE (its thumbprint names the key to Entra)")?;
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref()));
        Ok(Self { key, thumbprint })
    }

    /// The `x5t#S256` thumbprint.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A signed client assertion for `client_id` at `audience` (the token
    /// endpoint), valid from `now_s` (seconds since the epoch) for
    /// [`ASSERTION_LIFETIME_S`].
    pub fn assertion(&self, client_id: &str, audience: &str, now_s: i64) -> Result<String, String> {
        let header = serde_json::json!({
            "alg": "PS256",
            "typ": "JWT",
            "x5t#S256": self.thumbprint,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti()?,
            "nbf": now_s,
            "iat": now_s,
            "exp": now_s + ASSERTION_LIFETIME_S,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_owned())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// A random 128-bit id, as a GUID-shaped string.
fn jti() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no randomness for the assertion's jti".to_owned())?;
    let hex = hex::encode(bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{KeyPair, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};

    /// The Graph stand-in's throwaway key pair (public on purpose).
    const PEM: &str = include_str!("../../../../graph-sim/src/test-client-certificate.pem");
    /// Its thumbprint as `openssl x509 -outform DER | openssl dgst -sha256
    /// -binary | base64` (URL-safe, unpadded) computed it.
    const OPENSSL_THUMBPRINT: &str = "nRAc61FrAfqqwGgUkOwBcj1ksjXkNGyWF57vo5QTLQI";

    #[test]
    fn the_thumbprint_is_openssls_and_the_assertion_verifies() {
        let cert = Certificate::from_pem(PEM).unwrap();
        assert_eq!(cert.thumbprint(), OPENSSL_THUMBPRINT);
        let jwt = cert
            .assertion(
                "app-id",
                "https://login.example/t/oauth2/v2.0/token",
                1_800_000_000,
            )
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t#S256"], OPENSSL_THUMBPRINT);
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(
            (&claims["iss"], &claims["sub"]),
            (&"app-id".into(), &"app-id".into())
        );
        assert_eq!(
            claims["exp"].as_i64(),
            Some(1_800_000_000 + ASSERTION_LIFETIME_S)
        );
        assert_eq!(claims["jti"].as_str().map(str::len), Some(36));
        // The signature verifies with the key's public part, and not over
        // anything else.
        let public = UnparsedPublicKey::new(
            &RSA_PSS_2048_8192_SHA256,
            cert.key.public_key().as_ref().to_vec(),
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"other", &signature).is_err());
        // Two assertions never share a jti.
        let again = cert.assertion("app-id", "aud", 1_800_000_000).unwrap();
        assert_ne!(
            decode(again.split('.').nth(1).unwrap())["jti"],
            claims["jti"]
        );
    }

    #[test]
    fn one_line_values_and_bad_pem_are_handled() {
        let one_line = PEM.replace('\n', "\\n");
        assert_eq!(
            Certificate::from_pem(&one_line).unwrap().thumbprint(),
            OPENSSL_THUMBPRINT
        );
        let key_only: String = PEM
            .split("-----BEGIN CERTIFICATE-----")
            .next()
            .unwrap()
            .to_owned();
        assert!(
            Certificate::from_pem(&key_only)
                .unwrap_err()
                .contains("CERTIFICATE")
        );
        let cert_only = &PEM[PEM.find("-----BEGIN CERTIFICATE-----").unwrap()..];
        assert!(
            Certificate::from_pem(cert_only)
                .unwrap_err()
                .contains("private key")
        );
        assert!(Certificate::from_pem("not a pem").is_err());
        // Debug shows the thumbprint, never key material.
        let printed = format!(
            "{:?}",
            Credential::Certificate(Certificate::from_pem(PEM).unwrap())
        );
        assert!(printed.contains(OPENSSL_THUMBPRINT), "{printed}");
        assert!(!printed.contains("MII"), "{printed}");
    }
}
