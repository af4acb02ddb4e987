//! `idp-duo-relay entra subscribe --url URL`: creates or renews the relay's
//! Microsoft Graph subscriptions on Entra ID users and groups (see
//! `relay_core::source::entra::subscription`). Idempotent: run it once
//! after deploying, then on a schedule (daily keeps 27 days of margin on
//! the 28-day lifetime it asks for).

use std::process::ExitCode;

use relay_core::config::{RawConfig, optional};
use relay_core::source::EntraApi;
use relay_core::source::entra::subscription::{
    check_notification_url, ensure_subscriptions, recreate_subscriptions,
};

pub(crate) const USAGE: &str = "\
USAGE:
    idp-duo-relay entra subscribe [--url https://HOST/entra] [--recreate]
    idp-duo-relay entra audit
    idp-duo-relay entra delta

Creates the relay's Microsoft Graph subscriptions (users and groups,
created/updated/deleted, clientState = ENTRA_CLIENT_STATE), or renews them
when they exist. Graph validates a new subscription by calling the URL:
the relay must be running there with ENTRA_CLIENT_STATE set. Needs
ENTRA_TENANT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET or
ENTRA_CLIENT_CERTIFICATE (the app also needs
the permissions Graph asks of a subscription on users and groups).

    --url URL    the relay's notification URL (Azure: https://APP/api/entra);
                 default ENTRA_NOTIFICATION_URL, which also lets the relay
                 re-create a subscription Graph removed by itself
    --recreate   rotate the clientState: create new subscriptions with the
                 first ENTRA_CLIENT_STATE value, then delete the old ones
                 (Graph cannot change a subscription's clientState); run it
                 while the relay accepts both values (ENTRA_CLIENT_STATE
                 new,old). The scheduled catch-up does this by itself

`entra audit` reads Entra's audit log (AuditLog.Read.All) from the
checkpoint in RELAY_STATE_DIR and applies every MFA reset in it (an admin
or the user deleted security info): the user's Duo devices are removed,
the user kept. Run it on a schedule; the delay of a reset is the interval
plus Entra's audit latency. Like catch-up, it uses RELAY_STATE_DIR's
applied.log: run it while serve is stopped, or on a serverless entry.

`entra delta` catches up by delta query: what changed in users and groups
since the deltaLinks stored in RELAY_STATE_DIR, each change applied like a
notification about it. The first run (no deltaLink yet), or a run whose
deltaLink Graph refuses (expired after 7 days), is a full resync: a
reconcile of every user and group, then delta from there (said in the
log). Run it on a schedule (daily keeps the links alive) and after a
`missed` lifecycle notification. Same RELAY_STATE_DIR rule as audit.

EXIT CODES: 0 done, 1 Graph refused or failed, 2 usage or configuration
";

/// Runs the command and answers its exit code.
pub(crate) async fn command(raw: &RawConfig, args: &[String]) -> ExitCode {
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::from(if args.is_empty() { 2 } else { 0 });
    }
    if args.first().map(String::as_str) == Some("audit") {
        return audit(raw, &args[1..]).await;
    }
    if args.first().map(String::as_str) == Some("delta") {
        return delta(raw, &args[1..]).await;
    }
    let (given, recreate) = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let api = match EntraApi::from_config(raw) {
        Ok(Some(api)) => api,
        Ok(None) => {
            eprintln!(
                "error: ENTRA_TENANT_ID is not set; entra subscribe needs ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE)"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(url) = given.or_else(|| api.notification_url().map(str::to_owned)) else {
        eprintln!("error: --url is required (or set ENTRA_NOTIFICATION_URL)\n\n{USAGE}");
        return ExitCode::from(2);
    };
    // The first rotation entry is the current value.
    let Some(state) = optional(raw, "ENTRA_CLIENT_STATE")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        eprintln!(
            "error: ENTRA_CLIENT_STATE is not set; it becomes the subscriptions' clientState"
        );
        return ExitCode::from(2);
    };
    let now = relay_core::state::now_ms();
    let done = if recreate {
        recreate_subscriptions(&api, &url, state, now).await
    } else {
        ensure_subscriptions(&api, &url, state, now).await
    };
    match done {
        Ok(outcomes) => {
            for o in outcomes {
                println!(
                    "{} {} subscription {} (expires {})",
                    o.action, o.resource, o.id, o.expires
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `subscribe [--url URL] [--recreate]` (or `--url=URL`): the URL if
/// given, https (http only to a loopback address, for tests), and whether
/// to re-create.
fn parse(args: &[String]) -> Result<(Option<String>, bool), String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("subscribe") {
        return Err("the subcommands are subscribe, audit and delta".into());
    }
    let mut url = None;
    let mut recreate = false;
    while let Some(arg) = it.next() {
        if arg == "--recreate" {
            recreate = true;
            continue;
        }
        match arg.split_once('=') {
            Some(("--url", v)) => url = Some(v.to_owned()),
            _ if arg == "--url" => {
                url = Some(it.next().ok_or("--url needs a value")?.clone());
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let url = url
        .map(|url| check_notification_url(&url).map_err(|why| format!("--url {why}")))
        .transpose()?;
    Ok((url, recreate))
}

/// What `entra audit` and `entra delta` run with: the Graph client, a live
/// relay on RELAY_STATE_DIR, the state directory and its lock.
type Built = (
    EntraApi,
    relay_core::pipeline::Relay<relay_core::apply::DuoDirectory, relay_core::store::FileStore>,
    std::path::PathBuf,
    std::fs::File,
);

/// Builds [`Built`] for `command` (`audit`, `delta`); `Err` is the exit
/// code, the error printed.
fn build(raw: &RawConfig, command: &str, rest: &[String]) -> Result<Built, ExitCode> {
    if let Some(extra) = rest.first() {
        eprintln!("error: unknown argument {extra:?}\n\n{USAGE}");
        return Err(ExitCode::from(2));
    }
    if let Err(e) = crate::reconcile::init_logging(raw) {
        eprintln!("error: {e}");
        return Err(ExitCode::from(2));
    }
    let built = (|| {
        let rules = relay_core::plan::PlanRules::from_config(raw).map_err(|e| (2, e.into()))?;
        let lookups =
            relay_core::pipeline::IdpLookups::from_config(raw).map_err(|e| (2, e.into()))?;
        // The relay's own Graph client: one token for the run's reads and
        // the planner's.
        let api = lookups.entra.clone().ok_or_else(|| (2, anyhow::anyhow!("ENTRA_TENANT_ID is not set; entra {command} needs ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE)")))?;
        let (state_dir, lock) = crate::catch_up::open_state_dir(raw)?;
        let relay = crate::catch_up::live_relay(raw, &state_dir, rules, lookups)?;
        Ok::<_, (u8, anyhow::Error)>((api, relay, state_dir, lock))
    })();
    built.map_err(|(code, e)| {
        eprintln!("error: {e:#}");
        ExitCode::from(code)
    })
}

/// `entra delta`: one delta catch-up (or full resync).
async fn delta(raw: &RawConfig, rest: &[String]) -> ExitCode {
    let (api, relay, state_dir, _lock) = match build(raw, "delta", rest) {
        Ok(built) => built,
        Err(code) => return code,
    };
    let checkpoints = relay_core::catch_up::FileCheckpoints::new(&state_dir);
    match relay_core::catch_up::entra_delta::catch_up(
        &relay,
        &api,
        &checkpoints,
        relay_core::state::now_ms(),
    )
    .await
    {
        Ok(run) => {
            println!("{}", relay_core::catch_up::entra_delta::summary(&run));
            ExitCode::from(if run.incomplete() { 1 } else { 0 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `entra audit`: one poll of the audit log for MFA resets.
async fn audit(raw: &RawConfig, rest: &[String]) -> ExitCode {
    let (api, relay, state_dir, _lock) = match build(raw, "audit", rest) {
        Ok(built) => built,
        Err(code) => return code,
    };
    let checkpoints = relay_core::catch_up::FileCheckpoints::new(&state_dir);
    match relay_core::catch_up::entra_audit::poll_resets(
        &relay,
        &api,
        &checkpoints,
        relay_core::state::now_ms(),
    )
    .await
    {
        Ok(poll) => {
            println!(
                "{} audit records, {} MFA resets: {} applied, {} duplicates, {} failed ({} Graph calls)",
                poll.records,
                poll.resets,
                poll.applied,
                poll.duplicates,
                poll.failed,
                poll.graph_calls
            );
            ExitCode::from(if poll.failed == 0 { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_url_is_https_and_optional() {
        assert_eq!(
            parse(&args(&[
                "subscribe",
                "--url",
                "https://relay.example.com/entra"
            ]))
            .unwrap()
            .0
            .as_deref(),
            Some("https://relay.example.com/entra")
        );
        assert!(parse(&args(&["subscribe", "--url=http://127.0.0.1:8080/entra"])).is_ok());
        // Without --url: ENTRA_NOTIFICATION_URL, if set (checked in `command`).
        assert_eq!(parse(&args(&["subscribe"])), Ok((None, false)));
        assert_eq!(parse(&args(&["subscribe", "--recreate"])), Ok((None, true)));
        for bad in [
            &["subscribe", "--url", "http://relay.example.com/entra"][..],
            &["subscribe", "--url"],
            &["renew"],
            &["subscribe", "--url", "x", "--force"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
