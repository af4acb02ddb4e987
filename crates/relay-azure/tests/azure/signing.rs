//! SharedKey for the Table service, pinned by known answers.
//!
//! Microsoft's "Authorize with Shared Key" page gives the Table service's
//! string-to-sign but no worked signature for it, so these vectors were
//! computed independently with Python's standard library
//! (`base64.b64encode(hmac.new(base64.b64decode(key), s.encode(), hashlib.sha256).digest())`)
//! over Azurite's public development key. That they are the signatures
//! the service accepts is shown by the Azurite round trips in `store.rs`
//! (Azurite recomputes every SharedKey signature and answers 403 on a
//! mismatch — tested there too).

use std::time::{Duration, UNIX_EPOCH};

use relay_azure::shared_key::{
    AccountKey, authorization, canonicalized_resource, rfc1123, string_to_sign,
};

use crate::common::{DEV_ACCOUNT, DEV_KEY};

#[test]
fn create_table_request_known_answer() {
    let key = AccountKey::from_base64(DEV_KEY).unwrap();
    let date = rfc1123(UNIX_EPOCH + Duration::from_secs(1_255_297_753));
    assert_eq!(date, "Sun, 11 Oct 2009 21:49:13 GMT");
    // Path-style (Azurite) endpoint: the account appears twice.
    let resource = canonicalized_resource(DEV_ACCOUNT, "/devstoreaccount1/Tables", None);
    let to_sign = string_to_sign("POST", "", "application/json", &date, &resource);
    assert_eq!(
        to_sign,
        "POST\n\napplication/json\nSun, 11 Oct 2009 21:49:13 GMT\n/devstoreaccount1/devstoreaccount1/Tables"
    );
    assert_eq!(
        authorization(DEV_ACCOUNT, &key, &to_sign),
        "SharedKey devstoreaccount1:5Aln0/EanT/ylb/vVBZ2dYTIpwHD0OjRrfQLEhX4WUo="
    );
}

#[test]
fn get_entity_request_known_answer() {
    let key = AccountKey::from_base64(DEV_KEY).unwrap();
    let resource = canonicalized_resource(
        DEV_ACCOUNT,
        "/devstoreaccount1/relayidempotency(PartitionKey='okta',RowKey='b2t0YTpldnQx')",
        None,
    );
    let to_sign = string_to_sign("GET", "", "", "Sun, 11 Oct 2009 21:49:13 GMT", &resource);
    assert_eq!(
        authorization(DEV_ACCOUNT, &key, &to_sign),
        "SharedKey devstoreaccount1:NYP/g8poeRDf8fNGvE15MHCFoDKwJGXSbWYaj1CNcKY="
    );
}
