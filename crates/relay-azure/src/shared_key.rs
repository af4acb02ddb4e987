//! SharedKey authorization for the Azure Table and Queue services, as pure
//! functions of (verb, headers, request path, query, account, key) — no
//! clock, no I/O — so known-answer tests pin them. The Queue service's
//! string-to-sign is [`queue_string_to_sign`]; the rest of this page is the
//! Table service's.
//!
//! The Table service's SharedKey string-to-sign is shorter than the Blob and
//! Queue one (no canonicalized `x-ms-*` headers):
//!
//! ```text
//! VERB \n Content-MD5 \n Content-Type \n Date \n CanonicalizedResource
//! ```
//!
//! where Date is the `x-ms-date` value when that header is sent (we always
//! send it) and CanonicalizedResource is `/` + account name + the request's
//! encoded URI path, plus `?comp=…` when the query has a `comp` parameter (our
//! four calls never do). Sources: Microsoft's "Authorize with Shared Key"
//! (learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key,
//! "Shared Key authorization for the Table service"); the same shape in
//! azure-sdk-for-python `azure/data/tables/_authentication.py` and in
//! Azurite's verifier `src/table/authentication/TableSharedKeyAuthenticator.ts`.
//! With a path-style endpoint (Azurite, `http://127.0.0.1:10002/devstoreaccount1`)
//! the path already starts with the account, so it appears twice:
//! `/devstoreaccount1/devstoreaccount1/Tables`.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};

/// `x-ms-version` of every request. 2019-02-02 is the first Table service
/// version that also accepts Microsoft Entra ID (bearer) tokens, so the
/// managed-identity mode uses the same version.
pub const API_VERSION: &str = "2019-02-02";

/// A storage account key (the decoded bytes of the base64 `AccountKey`).
/// Never printed.
#[derive(Clone)]
pub struct AccountKey(Vec<u8>);

impl AccountKey {
    /// Decodes the base64 key of a connection string. `None` when it is not
    /// base64 (the caller names the variable; the value is never echoed).
    pub fn from_base64(value: &str) -> Option<Self> {
        BASE64
            .decode(value.trim())
            .ok()
            .filter(|k| !k.is_empty())
            .map(Self)
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `/account/path[?comp=…]` for the Table service.
pub fn canonicalized_resource(account: &str, encoded_path: &str, comp: Option<&str>) -> String {
    let mut resource = format!("/{account}{encoded_path}");
    if let Some(comp) = comp {
        resource.push_str("?comp=");
        resource.push_str(comp);
    }
    resource
}

/// The Table service SharedKey string-to-sign. `content_md5` and
/// `content_type` are empty when the request has no such header.
pub fn string_to_sign(
    verb: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    canonicalized_resource: &str,
) -> String {
    format!("{verb}\n{content_md5}\n{content_type}\n{date}\n{canonicalized_resource}")
}

/// The Queue (and Blob) service SharedKey string-to-sign, version
/// 2015-02-21 and later:
///
/// ```text
/// VERB \n Content-Encoding \n Content-Language \n Content-Length \n Content-MD5 \n
/// Content-Type \n Date \n If-Modified-Since \n If-Match \n If-None-Match \n
/// If-Unmodified-Since \n Range \n CanonicalizedHeaders CanonicalizedResource
/// ```
///
/// We never send the optional headers, and always `x-ms-date`, so Date is
/// empty. `content_length` is 0 for no body (then written as empty).
/// `ms_headers` are the request's `x-ms-*` headers; `query` the decoded
/// query parameters. CanonicalizedHeaders: each `x-ms-*` header lowercased,
/// sorted, as `name:value\n`. CanonicalizedResource: `/account` + the
/// encoded path, then `\nname:value` for each query parameter sorted by
/// lowercased name (repeated names' values sorted and comma-joined).
/// Sources: Microsoft's "Authorize with Shared Key" ("Blob, Queue, and File
/// services (Shared Key authorization)"); the same in Azurite's
/// `src/queue/authentication/QueueSharedKeyAuthenticator.ts`.
pub fn queue_string_to_sign(
    verb: &str,
    content_length: usize,
    content_type: &str,
    ms_headers: &[(&str, &str)],
    account: &str,
    encoded_path: &str,
    query: &[(&str, &str)],
) -> String {
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut headers: Vec<(String, &str)> = ms_headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        .filter(|(n, _)| n.starts_with("x-ms-"))
        .collect();
    headers.sort();
    let mut canonical_headers = String::new();
    for (name, value) in &headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let mut params: std::collections::BTreeMap<String, Vec<&str>> =
        std::collections::BTreeMap::new();
    for (name, value) in query {
        params
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    let mut resource = format!("/{account}{encoded_path}");
    for (name, mut values) in params {
        values.sort_unstable();
        resource.push('\n');
        resource.push_str(&name);
        resource.push(':');
        resource.push_str(&values.join(","));
    }
    format!("{verb}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n{canonical_headers}{resource}")
}

/// `SharedKey <account>:<base64 HMAC-SHA256(key, string_to_sign)>`.
pub fn authorization(account: &str, key: &AccountKey, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    format!("SharedKey {account}:{signature}")
}

/// RFC 1123 date in GMT (`Sun, 11 Oct 2009 21:49:13 GMT`), the form
/// `x-ms-date` takes (jiff's RFC 9110 printer). Times before 1970 are
/// clamped to the epoch.
pub fn rfc1123(time: SystemTime) -> String {
    let time = jiff::Timestamp::try_from(time)
        .ok()
        .filter(|t| *t >= jiff::Timestamp::UNIX_EPOCH)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&time)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc1123_dates() {
        // The example date of Microsoft's "Authorize with Shared Key" page.
        let t = UNIX_EPOCH + Duration::from_secs(1_255_297_753);
        assert_eq!(rfc1123(t), "Sun, 11 Oct 2009 21:49:13 GMT");
        assert_eq!(rfc1123(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc1123(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn resource_and_string_to_sign_shape() {
        assert_eq!(
            canonicalized_resource("devstoreaccount1", "/devstoreaccount1/Tables", None),
            "/devstoreaccount1/devstoreaccount1/Tables"
        );
        assert_eq!(
            canonicalized_resource("myaccount", "/mytable", Some("acl")),
            "/myaccount/mytable?comp=acl"
        );
        assert_eq!(
            string_to_sign("GET", "", "", "D", "/a/t"),
            "GET\n\n\nD\n/a/t"
        );
    }

    #[test]
    fn keys_are_redacted_and_checked() {
        let key = AccountKey::from_base64("c2VjcmV0LWtleS1ieXRlcw==").unwrap();
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert!(AccountKey::from_base64("not base64!").is_none());
        assert!(AccountKey::from_base64("").is_none());
    }
}
