//! The Okta event hook is registered (by Terraform) for exactly the event
//! types the relay handles. The list lives once, in `relay_core::source::okta::hook`; this
//! test keeps the generated `terraform/idp/okta-event-types.json` equal to it.
//! Regenerate with `UPDATE_OKTA_EVENT_TYPES=1 cargo test -p relay-core --test okta_event_types`.

use std::path::PathBuf;

fn generated() -> String {
    let types: Vec<&str> = relay_core::source::okta::hook::handled_event_types().collect();
    let mut json = serde_json::to_string_pretty(&types).unwrap_or_default();
    json.push('\n');
    json
}

#[test]
fn terraform_subscribes_exactly_the_handled_event_types() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/idp/okta-event-types.json");
    let expected = generated();
    if std::env::var_os("UPDATE_OKTA_EVENT_TYPES").is_some() {
        std::fs::write(&path, &expected).expect("write the generated list");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        expected,
        "{} is out of date: run UPDATE_OKTA_EVENT_TYPES=1 cargo test -p relay-core --test okta_event_types",
        path.display()
    );
}
