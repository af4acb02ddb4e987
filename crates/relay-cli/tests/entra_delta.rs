//! `idp-duo-relay entra delta` as a scheduler runs it: the binary against
//! the Graph stand-in and the Duo simulator, with its deltaLinks kept in
//! RELAY_STATE_DIR between runs — judged by its exit code, its summary line
//! and the Duo simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::process::Command;

use duo_sim::DuoSim;
use relay_tests::graph_standin::{GraphStandIn, GraphUser};
use relay_tests::run_to_end;

const ADA: &str = "0a1b2c3d-0000-4000-8000-00000000ada1";

fn delta(sim: &DuoSim, graph: &GraphStandIn, state: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(relay_tests::duo_env(sim))
        .envs(graph.env())
        .env("RELAY_STATE_DIR", state)
        .args(["entra", "delta"]);
    cmd
}

#[tokio::test]
async fn entra_delta_resyncs_once_then_reads_only_the_changes() {
    let mut ada = GraphUser::new(ADA, "ada@contoso.com");
    let graph = GraphStandIn::start(vec![ada.clone()], Vec::new()).await;
    let sim = DuoSim::start().await;
    let state = std::env::temp_dir().join(format!(
        "relay-cli-entra-delta-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));

    let (code, out) = run_to_end(delta(&sim, &graph, &state)).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("full resync (no deltaLink stored yet): reconcile converged"),
        "{out}"
    );
    assert_eq!(
        sim.user_by_username("ada@contoso.com").unwrap().status,
        "active"
    );
    // The links are kept in the state directory, as catch-up checkpoints.
    for key in ["entra-delta-users", "entra-delta-groups"] {
        assert!(state.join(format!("catch-up-{key}.json")).exists(), "{key}");
    }

    ada.enabled = false;
    graph.put_user(ada);
    graph.reset_requests();
    let (code, out) = run_to_end(delta(&sim, &graph, &state)).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 users and 0 groups changed: 1 applied"),
        "{out}"
    );
    assert_eq!(
        sim.user_by_username("ada@contoso.com").unwrap().status,
        "disabled"
    );
    // A new process: token, 2 delta pages, user + memberOf.
    assert_eq!(graph.requests().len(), 5, "{:?}", graph.requests());

    // Graph no longer honours the links: a full resync, said so.
    graph.refuse_delta_tokens(410);
    let (code, out) = run_to_end(delta(&sim, &graph, &state)).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("full resync (Graph refused the stored users deltaLink (HTTP 410"),
        "{out}"
    );

    // Without Graph credentials: a usage error, nothing read.
    let mut bare = delta(&sim, &graph, &state);
    bare.env_remove("ENTRA_TENANT_ID");
    let (code, out) = run_to_end(bare).await;
    assert_eq!(code, 2, "{out}");
    let _ = std::fs::remove_dir_all(&state);
}
