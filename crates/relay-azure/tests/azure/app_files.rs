//! The Function App files parse and say what the relay serves: host.json's
//! custom handler names this binary and forwards HTTP requests; one
//! function.json per route, anonymous, httpTrigger in + http `$return` out;
//! the queue worker's queueTrigger on `%RELAY_QUEUE_NAME%` with the queue
//! settings queue mode relies on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("app")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The host's function-name rule (Azure/azure-functions-host
/// `FunctionNameValidationRegex`: `^[a-z][a-z0-9_\-]{0,127}$`, not `host`).
fn valid_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.eq_ignore_ascii_case("host")
}

#[test]
fn host_json_runs_this_binary_with_forwarding() {
    let host = read_json(&app_dir().join("host.json"));
    assert_eq!(host["version"], "2.0");
    let binary = Path::new(env!("CARGO_BIN_EXE_relay-azure"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        binary.as_str()
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    // The binary serves /api/…: the prefix must stay `api`.
    assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
    // The handler's stdout (our JSON lines) is logged under this category.
    assert_eq!(
        host["logging"]["logLevel"]["Host.Function.Console"],
        "Information"
    );
}

#[test]
fn queue_mode_host_settings() {
    let host = read_json(&app_dir().join("host.json"));
    let queues = &host["extensions"]["queues"];
    // The accept stage puts base64 text (relay_azure::queue).
    assert_eq!(queues["messageEncoding"], "base64");
    // One message at a time per instance: with one instance in queue mode
    // (Terraform's app_scale_limit) events apply serially.
    assert_eq!(queues["batchSize"], 1);
    assert_eq!(queues["newBatchThreshold"], 0);
    // The worker gives up (with a reason) before the host does.
    assert_eq!(
        queues["maxDequeueCount"],
        relay_azure::worker::HOST_MAX_DEQUEUE_COUNT
    );
    assert!(
        relay_core::queue::QueuePolicy::default().max_attempts
            < relay_azure::worker::HOST_MAX_DEQUEUE_COUNT
    );
    // A failed message comes back only after a cut-off attempt's claim
    // has expired (else the retry would take the event for a duplicate
    // in progress and drop it).
    let hms: Vec<u64> = queues["visibilityTimeout"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|p| p.parse().unwrap())
        .collect();
    let visibility = hms[0] * 3600 + hms[1] * 60 + hms[2];
    assert!(visibility > relay_core::store::CLAIM_TIMEOUT.as_secs());
}

#[test]
fn queue_worker_function() {
    let dir = app_dir().join(relay_azure::worker::FUNCTION_NAME);
    assert!(valid_function_name(relay_azure::worker::FUNCTION_NAME));
    let function = read_json(&dir.join("function.json"));
    let bindings = function["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "a trigger and nothing else");
    let trigger = &bindings[0];
    assert_eq!(trigger["type"], "queueTrigger");
    assert_eq!(trigger["direction"], "in");
    assert_eq!(trigger["name"], relay_azure::worker::BINDING_NAME);
    // The same app setting the accept stage reads.
    assert_eq!(trigger["queueName"], "%RELAY_QUEUE_NAME%");
    assert_eq!(trigger["connection"], "AzureWebJobsStorage");
}

/// A timer function: its folder is a valid function name, one
/// `timerTrigger` on the app setting `setting` (which Terraform writes), not
/// run at start-up.
fn assert_timer_function(name: &str, setting: &str) {
    assert!(valid_function_name(name));
    let function = read_json(&app_dir().join(name).join("function.json"));
    let bindings = function["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "{name}: a trigger and nothing else");
    let trigger = &bindings[0];
    assert_eq!(trigger["type"], "timerTrigger");
    assert_eq!(trigger["direction"], "in");
    assert_eq!(trigger["schedule"], format!("%{setting}%"));
    assert_eq!(trigger["runOnStartup"], false);
}

#[test]
fn reconcile_timer_function() {
    // The schedule is reconcile_schedule in Terraform.
    assert_timer_function(
        relay_azure::reconcile::FUNCTION_NAME,
        "RELAY_RECONCILE_SCHEDULE",
    );
    // A large tenant needs more than the Consumption plan's default 5 min.
    let host = read_json(&app_dir().join("host.json"));
    assert_eq!(host["functionTimeout"], "00:10:00");
}

#[test]
fn catch_up_timer_function() {
    // The schedule is catch_up_schedule in Terraform.
    assert_timer_function(
        relay_azure::catch_up::FUNCTION_NAME,
        "RELAY_CATCH_UP_SCHEDULE",
    );
}

/// Function folders that are not HTTP routes, by trigger type.
fn non_http_functions() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (relay_azure::worker::FUNCTION_NAME, "queueTrigger"),
        (relay_azure::reconcile::FUNCTION_NAME, "timerTrigger"),
        (relay_azure::catch_up::FUNCTION_NAME, "timerTrigger"),
    ])
}

#[test]
fn one_function_per_route() {
    let expected: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::from([
        ("okta", ("okta", vec!["get", "post"])),
        ("auth0", ("auth0", vec!["post"])),
        ("auth0-logs", ("auth0/logs", vec!["post"])),
        ("entra", ("entra", vec!["post"])),
        ("healthz", ("healthz", vec!["get"])),
    ]);
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(app_dir()).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() {
            continue;
        }
        let name = entry.file_name().to_str().unwrap().to_owned();
        assert!(
            valid_function_name(&name),
            "{name} is not a valid function name"
        );
        let function = read_json(&entry.path().join("function.json"));
        let bindings = function["bindings"].as_array().unwrap();
        let trigger_type = bindings[0]["type"].as_str().unwrap();
        if trigger_type != "httpTrigger" {
            assert_eq!(
                non_http_functions().get(name.as_str()).copied(),
                Some(trigger_type),
                "{name}: a {trigger_type} function not listed in non_http_functions()"
            );
            continue;
        }
        assert_eq!(
            bindings.len(),
            2,
            "{name}: forwarding needs exactly http in + http out"
        );
        let trigger = &bindings[0];
        assert_eq!(trigger["type"], "httpTrigger");
        assert_eq!(trigger["direction"], "in");
        assert_eq!(
            trigger["authLevel"], "anonymous",
            "{name}: the relay authenticates itself"
        );
        let methods: Vec<String> = trigger["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_owned())
            .collect();
        let out = &bindings[1];
        assert_eq!(out["type"], "http");
        assert_eq!(out["direction"], "out");
        assert_eq!(out["name"], "$return");
        found.insert(
            name,
            (trigger["route"].as_str().unwrap().to_owned(), methods),
        );
    }
    let found: BTreeMap<&str, (&str, Vec<&str>)> = found
        .iter()
        .map(|(k, (r, m))| {
            (
                k.as_str(),
                (r.as_str(), m.iter().map(String::as_str).collect()),
            )
        })
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn package_script_ships_every_function() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("package.sh")).unwrap();
    // Every folder of app/ with a function.json, whatever its trigger.
    assert!(script.contains(r#"for dir in "$crate_dir"/app/*/; do"#));
    assert!(script.contains(r#"cp "$dir/function.json" "$out/$function/""#));
    assert!(script.contains("x86_64-unknown-linux-gnu"));
    assert!(script.contains("--release"));
}
