//! Duo request signing as pure functions.
//!
//! Everything here is a function of its inputs — the date is passed in, never
//! read from the clock — so the published vectors pin it (see the tests at the
//! bottom and `tests/vectors.rs`). The canonical string follows Duo's official
//! clients (`duo_client_python` `canonicalize()`, `duo_hmac_python`
//! `duo_canonicalize.py`):
//!
//! | line | v2 | v5 |
//! |---|---|---|
//! | 1 | date (RFC 2822) | date |
//! | 2 | METHOD (upper-case) | METHOD |
//! | 3 | host (lower-case) | host |
//! | 4 | path as sent | path |
//! | 5 | canonical params (query or form body) | canonical query params (empty for JSON bodies) |
//! | 6 | — | `sha512_hex(body bytes)` |
//! | 7 | — | `sha512_hex(x-duo headers)` |
//!
//! Lines are joined with `\n`, no trailing newline. The `Authorization` value is
//! `Basic base64("<ikey>:<lower-hex HMAC>")`, keyed with the secret key's UTF-8
//! bytes.

use std::fmt::Write as _;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha512};

use crate::secret::Secret;

/// Which of Duo's signature schemes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigVersion {
    /// v2: HMAC over date, method, host, path and the form/query parameters.
    /// The digest is selectable because Duo's docs still show SHA-1 while the
    /// official clients moved to SHA-512.
    V2(V2Digest),
    /// v5 (the official clients' default since 2023): HMAC-SHA512, parameters
    /// of POST/PUT/PATCH sent as a JSON body whose exact bytes are hashed, and
    /// the `X-Duo-*` headers hashed.
    #[default]
    V5,
}

impl SigVersion {
    /// Parses the `DUO_SIG_VERSION` values `5`, `2` (HMAC-SHA1, as in Duo's
    /// docs) and `2-sha512`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "5" | "v5" => Some(Self::V5),
            "2" | "v2" | "2-sha1" => Some(Self::V2(V2Digest::Sha1)),
            "2-sha512" | "v2-sha512" => Some(Self::V2(V2Digest::Sha512)),
            _ => None,
        }
    }
}

/// HMAC digest used with signature v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Digest {
    Sha1,
    Sha512,
}

/// POST, PUT and PATCH carry their parameters in the body; every other method
/// in the query string (Duo does not accept a mix).
pub fn is_body_method(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH"
    )
}

/// One request, as the canonical string sees it.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// RFC 2822 date, the same string that is sent in `Date` / `X-Duo-Date`.
    pub date: &'a str,
    pub method: &'a str,
    /// The configured API host (`api-xxxxxxxx.duosecurity.com`), never a
    /// proxy or simulator address.
    pub host: &'a str,
    /// The path exactly as sent, without the query string.
    pub path: &'a str,
    /// Parameters that go on line 5: the query for GET/DELETE, and for v2 also
    /// the form body of POST/PUT/PATCH. Empty for v5 JSON bodies.
    pub params: &'a [(String, String)],
    /// The exact body bytes (v5 line 6); ignored by v2.
    pub body: &'a [u8],
    /// `X-Duo-*` headers that are sent (v5 line 7); ignored by v2.
    pub x_duo_headers: &'a [(String, String)],
}

/// Errors in the caller's input to signing (never in Duo's answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("header {0:?} is not an X-Duo-* header")]
    NotXDuoHeader(String),
    #[error("header {0:?} is given twice")]
    DuplicateHeader(String),
    #[error("header {0:?} contains a NUL character")]
    NulInHeader(String),
}

/// Percent-encodes `input` as Duo canonicalizes parameters: UTF-8 bytes, only
/// `A-Z a-z 0-9 - _ . ~` left as they are, everything else `%XX` with
/// upper-case hex (so space is `%20`, never `+`). Same as Python's
/// `urllib.parse.quote(s, safe='~')`.
pub fn percent_encode(input: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in input.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// The canonical parameter line: pairs encoded, sorted by encoded key and then
/// encoded value (repeated keys are kept), joined as `k=v` with `&`.
///
/// The same string is used as the query string / form body on the wire, so
/// what is sent and what is signed cannot drift apart.
pub fn canonical_params(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(key, value)| {
            let mut k = String::with_capacity(key.len());
            percent_encode(key, &mut k);
            let mut v = String::with_capacity(value.len());
            percent_encode(value, &mut v);
            (k, v)
        })
        .collect();
    encoded.sort_unstable();
    let mut out = String::with_capacity(encoded.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (key, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// SHA-512 of `data` as lower-case hex.
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

/// v5 line 7: the `X-Duo-*` headers, names lower-cased and sorted, joined as
/// `name\0value\0name\0value`, hashed with SHA-512.
pub fn canonical_x_duo_headers(headers: &[(String, String)]) -> Result<String, SignError> {
    let mut lowered: Vec<(String, &str)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if !name.starts_with("x-duo-") {
            return Err(SignError::NotXDuoHeader(name));
        }
        if name.contains('\0') || value.contains('\0') {
            return Err(SignError::NulInHeader(name));
        }
        if lowered.iter().any(|(seen, _)| *seen == name) {
            return Err(SignError::DuplicateHeader(name));
        }
        lowered.push((name, value));
    }
    lowered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut joined = String::new();
    for (i, (name, value)) in lowered.iter().enumerate() {
        if i > 0 {
            joined.push('\0');
        }
        joined.push_str(name);
        joined.push('\0');
        joined.push_str(value);
    }
    Ok(sha512_hex(joined.as_bytes()))
}

/// The canonical string for `version`.
pub fn canonical_string(version: SigVersion, input: &SignInput<'_>) -> Result<String, SignError> {
    let mut out = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{}\n{}\n{}\n{}\n{}",
        input.date,
        input.method.to_ascii_uppercase(),
        input.host.to_ascii_lowercase(),
        input.path,
        canonical_params(input.params)
    );
    if version == SigVersion::V5 {
        out.push('\n');
        out.push_str(&sha512_hex(input.body));
        out.push('\n');
        out.push_str(&canonical_x_duo_headers(input.x_duo_headers)?);
    }
    Ok(out)
}

/// The lower-case hex HMAC of the canonical string.
pub fn signature_hex(
    version: SigVersion,
    skey: &Secret,
    input: &SignInput<'_>,
) -> Result<String, SignError> {
    let canonical = canonical_string(version, input)?;
    let key = skey.expose().as_bytes();
    let sig = match version {
        SigVersion::V2(V2Digest::Sha1) => hmac_hex::<Hmac<sha1::Sha1>>(key, &canonical),
        SigVersion::V2(V2Digest::Sha512) | SigVersion::V5 => {
            hmac_hex::<Hmac<Sha512>>(key, &canonical)
        }
    };
    Ok(sig)
}

fn hmac_hex<M: Mac + KeyInit>(key: &[u8], message: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` only fails for MACs
    // with a fixed key size, which these are not.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The full `Authorization` header value: `Basic base64(ikey:signature)`.
pub fn authorization(
    version: SigVersion,
    ikey: &str,
    skey: &Secret,
    input: &SignInput<'_>,
) -> Result<String, SignError> {
    let sig = signature_hex(version, skey, input)?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{ikey}:{sig}"));
    Ok(format!("Basic {token}"))
}

/// Serializes string parameters as the JSON object Duo's official clients
/// send: keys sorted, no whitespace, non-ASCII `\u`-escaped (Python's
/// `json.dumps(sort_keys=True, separators=(',', ':'))`). Only the exact bytes
/// matter for the signature, but matching the reference clients byte for byte
/// lets their published vectors pin this too.
///
/// Returns `None` when a key is repeated: a JSON object cannot carry it.
pub fn json_body(params: &[(String, String)]) -> Option<Vec<u8>> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mut out = String::with_capacity(
        2 + params
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (key, value)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(key, &mut out);
        out.push(':');
        json_string(value, &mut out);
    }
    out.push('}');
    Some(out.into_bytes())
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reserved_characters_encode_like_duo_hmac() {
        // duo_hmac_python test/test_canonicalization.py
        let mut out = String::new();
        percent_encode("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", &mut out);
        assert_eq!(
            out,
            "%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~"
        );
    }

    #[test]
    fn space_is_percent_20_and_unicode_is_utf8_bytes() {
        let mut out = String::new();
        percent_encode("First Last é☃", &mut out);
        assert_eq!(out, "First%20Last%20%C3%A9%E2%98%83");
    }

    #[test]
    fn params_sort_by_encoded_key_then_value_and_keep_repeats() {
        let p = pairs(&[("b", "2"), ("a", "z"), ("a", "y"), ("a b", ""), ("A", "1")]);
        assert_eq!(canonical_params(&p), "A=1&a=y&a=z&a%20b=&b=2");
        assert_eq!(canonical_params(&[]), "");
    }

    #[test]
    fn x_duo_header_hash_matches_duo_client_python() {
        // duo_client_python tests/test_client.py::test_v5_with_json
        let h = pairs(&[("X-Duo-Header-1", "header_value_1")]);
        assert_eq!(
            canonical_x_duo_headers(&h).unwrap(),
            "630b4bfe7e9abd03da2eee8f0a5d4e60a254ec880a839bcc2223bb5b9443e8ef24d58f0254f1f5934bf8c017ebd0fd5b1acf86766bdbe74185e712a4092df3ed"
        );
        assert_eq!(canonical_x_duo_headers(&[]).unwrap(), sha512_hex(b""));
    }

    #[test]
    fn x_duo_headers_are_validated() {
        assert!(matches!(
            canonical_x_duo_headers(&pairs(&[("Date", "x")])),
            Err(SignError::NotXDuoHeader(_))
        ));
        assert!(matches!(
            canonical_x_duo_headers(&pairs(&[("x-duo-a", "1"), ("X-Duo-A", "2")])),
            Err(SignError::DuplicateHeader(_))
        ));
        assert!(matches!(
            canonical_x_duo_headers(&pairs(&[("x-duo-a", "a\0b")])),
            Err(SignError::NulInHeader(_))
        ));
    }

    #[test]
    fn empty_body_hashes_match_reference() {
        assert!(sha512_hex(b"{}").starts_with("27c74670adb7"));
        assert!(sha512_hex(b"{}").ends_with("63fd"));
        assert!(sha512_hex(b"").starts_with("cf83e1357eef"));
    }

    #[test]
    fn json_body_is_python_compatible() {
        let body = json_body(&pairs(&[("one", "1"), ("foo", "bar"), ("bool", "true")])).unwrap();
        assert_eq!(body, br#"{"bool":"true","foo":"bar","one":"1"}"#);
        let body = json_body(&pairs(&[("k", "é\"\\\n\u{1}😀")])).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"k":"\u00e9\"\\\n\u0001\ud83d\ude00"}"#
        );
        assert_eq!(json_body(&[]).unwrap(), b"{}");
        assert_eq!(json_body(&pairs(&[("a", "1"), ("a", "2")])), None);
    }

    #[test]
    fn sig_version_parses_contract_values() {
        assert_eq!(SigVersion::parse("5"), Some(SigVersion::V5));
        assert_eq!(SigVersion::parse("2"), Some(SigVersion::V2(V2Digest::Sha1)));
        assert_eq!(
            SigVersion::parse("2-sha512"),
            Some(SigVersion::V2(V2Digest::Sha512))
        );
        assert_eq!(SigVersion::parse("4"), None);
        assert_eq!(SigVersion::default(), SigVersion::V5);
    }
}
