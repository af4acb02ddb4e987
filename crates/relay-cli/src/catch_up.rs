//! `idp-duo-relay catch-up`: read the IdP's own event log from the stored
//! checkpoint and apply what the hook missed (relay_core::catch_up). The
//! summary goes to stdout (a table, or JSON with `--json`); the log lines
//! (one per event, and the `catch_up` summary line) go to stderr.
//!
//! Local state: the idempotency keys and watermarks `serve` keeps in
//! `RELAY_STATE_DIR/applied.log`, the group index `groups.log`, and the
//! checkpoint `catch-up-okta.json` / `catch-up-auth0.json` beside them.
//! `serve` holds `applied.log` open, so run this while `serve` is stopped
//! (as for `dlq replay`); two catch-ups at once are refused by a lock.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use relay_core::apply::{DryRun, DuoDirectory};
use relay_core::catch_up::{
    CatchUpConfig, CatchUpOptions, CatchUpSummary, FileCheckpoints, LogApi, LogSource,
    parse_duration,
};
use relay_core::config::{RawConfig, duo_client, duo_config};
use relay_core::pipeline::{IdpLookups, Relay};
use relay_core::plan::PlanRules;
use relay_core::store::{DEFAULT_TTL, FileStore};

/// Read to the end of the log (or to the page budget) with no failed event.
pub(crate) const EXIT_OK: u8 = 0;
/// Bad flags or configuration: nothing was read or written.
pub(crate) const EXIT_USAGE: u8 = 1;
/// An event failed: transiently (the run stopped; the checkpoint stays
/// before its page) or permanently (recorded, as the hook does).
pub(crate) const EXIT_EVENT_FAILED: u8 = 2;
/// Reading the IdP's log failed.
pub(crate) const EXIT_IDP_ERROR: u8 = 4;
/// The local state (checkpoint, idempotency store) failed.
pub(crate) const EXIT_STORE_ERROR: u8 = 6;

pub(crate) const USAGE: &str = "\
USAGE:
    idp-duo-relay catch-up --source okta|auth0 [--since TIME] [--dry-run] [--json]

Reads the IdP's event log (Okta System Log, Auth0 tenant logs) from the
checkpoint in RELAY_STATE_DIR and runs every record the relay handles through
the hook's pipeline with the hook's idempotency keys: what the hook delivered
is a duplicate (no Duo call), what it missed is applied.

    --source okta|auth0    the log (OKTA_ORG_URL + OKTA_API_TOKEN, or
                           AUTH0_DOMAIN + AUTH0_CLIENT_ID + AUTH0_CLIENT_SECRET
                           with read:logs)
    --since TIME           start at TIME (RFC 3339, or a duration ago: 2h, 3d)
                           instead of the checkpoint
    --dry-run              report what would be applied; change nothing in Duo,
                           save no checkpoint
    --json                 the summary as JSON instead of a table

A first run (no checkpoint) starts RELAY_CATCH_UP_WINDOW ago (default 24h).
Run it while `serve` is stopped: both use RELAY_STATE_DIR/applied.log.

EXIT CODES:
    0  read to the end of the log (or RELAY_CATCH_UP_MAX_PAGES), no event failed
    1  bad flags or configuration
    2  an event failed (a transient failure stops the run; the next run retries)
    4  reading the IdP's log failed
    6  the local state failed (checkpoint, idempotency store)
";

/// Why `--source entra` is refused, and what to run instead.
const ENTRA: &str = "--source entra: Entra ID has no event log to replay; catch up with `idp-duo-relay entra delta` (what changed since the stored deltaLinks) and `entra audit` (MFA resets) — in the cloud, the scheduled catch-up with source entra runs both and renews the subscriptions";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    options: CatchUpOptions,
    json: bool,
}

fn parse(args: &[String], now_ms: i64) -> Result<Args, String> {
    let mut source = None;
    let mut since_ms = None;
    let mut dry_run = false;
    let mut json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--source" => {
                let v = value("--source")?;
                source = match LogSource::parse(&v) {
                    Some(LogSource::Entra) => return Err(ENTRA.to_owned()),
                    Some(source) => Some(source),
                    None => return Err("--source takes okta or auth0".to_owned()),
                };
            }
            "--since" => {
                let v = value("--since")?;
                let at = relay_core::order::parse_time_ms(&v)
                    .or_else(|| {
                        parse_duration(&v)
                            .map(|d| now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    })
                    .ok_or_else(|| {
                        "--since takes an RFC 3339 time (2026-12-03T10:00:00Z) or a duration ago (2h, 3d)"
                            .to_owned()
                    })?;
                if at > now_ms {
                    return Err("--since is in the future".to_owned());
                }
                since_ms = Some(at);
            }
            "--dry-run" => dry_run = true,
            "--json" => json = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let source = source.ok_or_else(|| "--source okta|auth0 is required".to_owned())?;
    Ok(Args {
        options: CatchUpOptions {
            source,
            since_ms,
            dry_run,
        },
        json,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the command and answers its exit code.
pub(crate) async fn command(raw: &RawConfig, args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::from(EXIT_OK);
    }
    let args = match parse(args, now_ms()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = crate::reconcile::init_logging(raw) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    match run(raw, &args).await {
        Ok(code) => ExitCode::from(code),
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(raw: &RawConfig, args: &Args) -> Result<u8, (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (EXIT_USAGE, e);
    let store_error = |e: anyhow::Error| (EXIT_STORE_ERROR, e);
    let config = CatchUpConfig::from_config(raw).map_err(|e| usage(e.into()))?;
    let api = LogApi::from_config(raw, args.options.source).map_err(|e| usage(e.into()))?;
    let rules = PlanRules::from_config(raw).map_err(|e| usage(e.into()))?;
    let lookups = IdpLookups::from_config(raw).map_err(|e| usage(e.into()))?;
    let (state_dir, _lock) = open_state_dir(raw)?;
    let checkpoints = FileCheckpoints::new(&state_dir);
    let applied = state_dir.join("applied.log");
    let (summary, planned) = if args.options.dry_run {
        // The idempotency keys are read from a copy, so the dry run tells
        // duplicates from new events without recording anything.
        let copy = DryRunCopy::of(&applied).map_err(store_error)?;
        let store = FileStore::open(copy.applied(), DEFAULT_TTL)
            .map_err(|e| store_error(anyhow::anyhow!("a copy of {}: {e}", applied.display())))?;
        let auth = crate::replay_auth().map_err(usage)?;
        let relay = Relay::new(auth, rules, DryRun::default(), store).with_lookups(lookups);
        let summary =
            relay_core::catch_up::run(&relay, &api, &checkpoints, &config, &args.options).await;
        let planned: Vec<String> = relay
            .directory()
            .planned()
            .iter()
            .map(ToString::to_string)
            .collect();
        (summary, planned)
    } else {
        let relay = live_relay(raw, &state_dir, rules, lookups)?;
        let summary =
            relay_core::catch_up::run(&relay, &api, &checkpoints, &config, &args.options).await;
        (summary, Vec::new())
    };
    print_summary(&summary, &planned, args.json).map_err(store_error)?;
    Ok(exit_code(&summary))
}

/// The relay a state-directory command applies events through: Duo with
/// the full retry policy, `applied.log`, `groups.log` (what `serve` keeps
/// in `RELAY_STATE_DIR`). Errors carry their exit code.
pub(crate) fn live_relay(
    raw: &RawConfig,
    state_dir: &Path,
    rules: PlanRules,
    lookups: IdpLookups,
) -> Result<Relay<DuoDirectory, FileStore>, (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (EXIT_USAGE, e);
    let store_error = |e: anyhow::Error| (EXIT_STORE_ERROR, e);
    let auth = crate::replay_auth().map_err(usage)?;
    let duo = duo_config(raw, duo_admin::RetryPolicy::default())
        .and_then(duo_client)
        .map_err(|e| usage(e.into()))?;
    let directory = DuoDirectory::from_rules(duo, &rules);
    let applied = state_dir.join("applied.log");
    let store = FileStore::open(&applied, DEFAULT_TTL).map_err(|e| {
        store_error(anyhow::anyhow!(
            "RELAY_STATE_DIR: cannot open the idempotency store {}: {e}",
            applied.display()
        ))
    })?;
    let groups = relay_core::group_index::FileGroupIndex::open(state_dir.join("groups.log"))
        .map_err(|e| {
            store_error(anyhow::anyhow!(
                "RELAY_STATE_DIR: cannot open the group index: {e}"
            ))
        })?;
    Ok(Relay::new(auth, rules, directory, store)
        .with_lookups(lookups)
        .with_group_index(Arc::new(groups)))
}

/// Creates `RELAY_STATE_DIR` and takes its catch-up lock (one run at a
/// time, and not while `serve` holds `applied.log`).
pub(crate) fn open_state_dir(
    raw: &RawConfig,
) -> Result<(PathBuf, std::fs::File), (u8, anyhow::Error)> {
    let store_error = |e: anyhow::Error| (EXIT_STORE_ERROR, e);
    let state_dir = PathBuf::from(crate::state_dir(raw));
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        store_error(anyhow::anyhow!(
            "RELAY_STATE_DIR {}: {e}",
            state_dir.display()
        ))
    })?;
    let lock = lock(&state_dir).map_err(store_error)?;
    Ok((state_dir, lock))
}

fn exit_code(summary: &CatchUpSummary) -> u8 {
    let code = summary.exit_code();
    debug_assert!(
        [EXIT_OK, EXIT_EVENT_FAILED, EXIT_IDP_ERROR, EXIT_STORE_ERROR].contains(&code),
        "relay-core's exit codes are the ones USAGE lists"
    );
    code
}

fn print_summary(summary: &CatchUpSummary, planned: &[String], json: bool) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(summary)?;
        if summary.dry_run
            && let Some(object) = value.as_object_mut()
        {
            object.insert("would".into(), serde_json::json!(planned));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for op in planned {
        println!("would: {op}");
    }
    let status = serde_json::to_value(summary.status)?;
    println!(
        "catch-up {} {}{}",
        summary.source.as_str(),
        status.as_str().unwrap_or("?"),
        if summary.dry_run { " (dry run)" } else { "" }
    );
    for (name, value) in [
        ("records read", summary.records),
        ("new (applied now)", summary.new),
        ("duplicates", summary.duplicates),
        ("failed", summary.failed),
        ("ignored (other types)", summary.ignored),
        ("pages", summary.pages),
        ("IdP calls", summary.idp_calls),
        ("Duo calls", summary.duo_calls),
        ("checkpoint lag (s)", summary.checkpoint_lag_s),
    ] {
        println!("  {name:<24} {value}");
    }
    if let Some(error) = &summary.error {
        println!("  {:<24} {error}", "stopped");
    }
    Ok(())
}

/// Holds `RELAY_STATE_DIR/catch-up.lock` for the run.
fn lock(state_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = state_dir.join("catch-up.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match relay_core::queue::disk::lock_exclusive(&file) {
        Ok(()) => {}
        Err(relay_core::queue::disk::LockFailed::Held) => anyhow::bail!(
            "{} is held by another catch-up run of this state directory",
            path.display()
        ),
        Err(relay_core::queue::disk::LockFailed::Io(e)) => {
            anyhow::bail!("locking {}: {e}", path.display())
        }
    }
    Ok(file)
}

/// A temporary copy of `applied.log` (and its format marker) for a dry run.
struct DryRunCopy {
    dir: PathBuf,
}

impl DryRunCopy {
    fn of(applied: &Path) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "idp-duo-relay-catch-up-dry-run-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir)?;
        let copy = Self { dir };
        for (from, name) in [
            (applied.to_path_buf(), "applied.log"),
            (applied.with_extension("log.format"), "applied.log.format"),
        ] {
            match std::fs::copy(&from, copy.dir.join(name)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("cannot copy {}: {e}", from.display()),
            }
        }
        Ok(copy)
    }

    fn applied(&self) -> PathBuf {
        self.dir.join("applied.log")
    }
}

impl Drop for DryRunCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(
            &list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            1_000_000_000_000,
        )
    }

    #[test]
    fn flags_parse() {
        let a = args(&["--source", "okta", "--since=2h", "--dry-run", "--json"]).unwrap();
        assert_eq!(
            a.options,
            CatchUpOptions {
                source: LogSource::Okta,
                since_ms: Some(1_000_000_000_000 - 7_200_000),
                dry_run: true,
            }
        );
        assert!(a.json);
        let a = args(&["--source=auth0", "--since", "2001-09-09T01:00:00Z"]).unwrap();
        assert_eq!(a.options.source, LogSource::Auth0);
        assert_eq!(a.options.since_ms, Some(999_997_200_000));
        assert!(!a.options.dry_run && !a.json);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        for (list, expected) in [
            (&[][..], "--source okta|auth0 is required"),
            (&["--source", "azure"][..], "--source takes okta or auth0"),
            (&["--source", "entra"][..], "idp-duo-relay entra delta"),
            (
                &["--source", "okta", "--since"][..],
                "--since needs a value",
            ),
            (
                &["--source", "okta", "--since", "yesterday"][..],
                "--since takes",
            ),
            (
                &["--source", "okta", "--since", "2099-01-01T00:00:00Z"][..],
                "in the future",
            ),
            (&["--source", "okta", "--force"][..], "unknown argument"),
        ] {
            let err = args(list).unwrap_err();
            assert!(err.contains(expected), "{list:?}: {err}");
        }
    }
}
