//! A cheap consistency check of crates/relay-gcp/Dockerfile: it names this
//! package and binary, the base images and the port. It does NOT build the
//! image — no Docker engine runs where these tests run — so whether the
//! image builds and starts is checked only by `docker build` elsewhere.

#![allow(clippy::unwrap_used)]

use std::path::Path;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

/// The instructions, without comments and continuation lines joined.
fn instructions() -> Vec<String> {
    dockerfile()
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dockerfile_names_this_package_binary_base_images_and_port() {
    let lines = instructions();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    let froms: Vec<&String> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: build then run");
    assert!(
        froms[0].starts_with("FROM rust:1-bookworm AS "),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "FROM gcr.io/distroless/cc-debian12:nonroot");

    let package = env!("CARGO_PKG_NAME");
    let binary = "relay-gcp"; // `[[bin]] name` in Cargo.toml
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("cargo build --release -p {package} --locked"))),
        "builds this package: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("target/release/{binary}")))
    );
    assert!(has(&format!("COPY --from=build /{binary} /{binary}")));
    assert!(has(&format!("ENTRYPOINT [\"/{binary}\"]")));
    assert!(has("EXPOSE 8080"));
    assert!(has("USER nonroot"));
    // Only the binary goes into the runtime stage.
    let runtime_copies = lines
        .iter()
        .skip_while(|l| !l.starts_with("FROM gcr.io/"))
        .filter(|l| l.starts_with("COPY") || l.starts_with("ADD"))
        .count();
    assert_eq!(runtime_copies, 1);

    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(manifest.contains(&format!("name = \"{binary}\"")));
}

#[test]
fn dockerfile_documents_the_build_command_from_the_workspace_root() {
    // --platform: Cloud Run runs linux/amd64 images only, whatever builds them.
    assert!(dockerfile().contains(
        "docker build --platform linux/amd64 -f crates/relay-gcp/Dockerfile -t relay-gcp ."
    ));
    // The context is the workspace root, which holds the lock file --locked needs.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(root.join("Cargo.lock").is_file());
}
