//! What the cloud crates' tests share around their emulators and binaries:
//! finding an emulator, running a command to its end, reading the relay's
//! summary log lines.

use std::process::Command;

use serde_json::Value;

/// The URL an emulator listens on, from `var` (exported by
/// `scripts/emulators.sh`), trimmed and without a trailing `/`. Unset:
/// `None` and a line saying the test skips, or a failure when
/// `RELAY_TEST_REQUIRE_EMULATORS=1` (CI). `what` names the emulator.
pub fn emulator_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("RELAY_TEST_REQUIRE_EMULATORS").as_deref() != Ok("1"),
                "{var} is not set but RELAY_TEST_REQUIRE_EMULATORS=1: {what} must be running \
                 (scripts/emulators.sh starts it)"
            );
            eprintln!(
                "SKIPPED: {var} is not set, so {what} is not running (run through scripts/test, \
                 or `source scripts/emulators.sh` first)"
            );
            None
        }
    }
}

/// Runs `command` to its end on a blocking thread: its exit code (-1 when a
/// signal ended it) and its stdout followed by its stderr.
pub async fn run_to_end(mut command: Command) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let output = command.output().expect("the command starts");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    })
    .await
    .expect("the thread running the command")
}

/// The per-event summary lines (`"message": "event"`) among the relay's
/// JSON log lines; lines that are not JSON are passed over.
pub fn summary_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "event")
        .collect()
}

/// Serves an axum app on a listener until the returned sender is dropped
/// (shared with the Graph stand-in, `graph-sim`).
pub(crate) use graph_sim::serve_until_dropped;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_keep_only_parsed_event_lines() {
        let logs = "starting\n{\"message\":\"event\",\"outcome\":\"applied\"}\n\
                    {\"message\":\"listening\"}\n{\"message\":\"event\",\"outcome\":\"duplicate\"}\n";
        let outcomes: Vec<Value> = summary_lines(logs)
            .into_iter()
            .map(|l| l["outcome"].clone())
            .collect();
        assert_eq!(outcomes, ["applied", "duplicate"]);
    }

    #[tokio::test]
    async fn run_to_end_gives_the_code_and_both_streams() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(run_to_end(command).await, (3, "out\nerr\n".to_owned()));
    }
}
