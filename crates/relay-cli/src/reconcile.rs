//! `idp-duo-relay reconcile`: converge Duo to the IdP, or report what would
//! change (`--dry-run`). The report goes to stdout (a table, or JSON with
//! `--json`); the log lines (one per user or group changed, and a summary)
//! go to stderr. The exit code says how the run ended, so a scheduler or a
//! script can act on it without parsing anything.

use std::io::IsTerminal;
use std::process::ExitCode;

use relay_core::config::{RawConfig, optional};
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{
    DEFAULT_MAX_DELETES, IdpKind, ReconcileError, ReconcileOptions, RunStatus,
};

/// Duo matches the IdP (or a dry run found nothing to do).
pub(crate) const EXIT_CONVERGED: u8 = 0;
/// Bad flags or configuration: nothing was read or written.
pub(crate) const EXIT_USAGE: u8 = 1;
/// Differences remain: a dry run found some, or some actions failed.
pub(crate) const EXIT_DRIFT: u8 = 2;
/// More deletions/deprovisions than `--max-deletes`: nothing was applied.
pub(crate) const EXIT_CAP: u8 = 3;
/// Reading the IdP failed: nothing was applied.
pub(crate) const EXIT_IDP_ERROR: u8 = 4;
/// Reading Duo failed: nothing was applied.
pub(crate) const EXIT_DUO_ERROR: u8 = 5;

pub(crate) const USAGE: &str = "\
USAGE:
    idp-duo-relay reconcile --source okta|auth0|entra [--dry-run] [--user LOGIN]
                            [--max-deletes N] [--include-unmanaged] [--json]

Reads the IdP's users, groups/roles and memberships and Duo's users and
groups, and makes Duo match (GROUP_FILTER and DEPROVISION_ACTION apply).

    --source okta|auth0|entra
                           the IdP (OKTA_ORG_URL + OKTA_API_TOKEN;
                           AUTH0_DOMAIN + AUTH0_CLIENT_ID + AUTH0_CLIENT_SECRET;
                           or ENTRA_TENANT_ID + ENTRA_CLIENT_ID +
                           ENTRA_CLIENT_SECRET)
    --dry-run              report what would change; change nothing
    --user LOGIN           only this user (IdP login / Auth0 email / Entra UPN)
    --max-deletes N        stop, applying nothing, when more than N users or
                           groups would be deleted or deprovisioned (default 10)
    --include-unmanaged    also deprovision Duo-only accounts (default: report them)
    --json                 the report as JSON instead of a table

EXIT CODES:
    0  converged (a dry run: nothing to do)
    1  bad flags or configuration
    2  drift left (a dry run found differences, or some actions failed)
    3  --max-deletes exceeded; nothing applied
    4  reading the IdP failed; nothing applied
    5  reading Duo failed; nothing applied
";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    options: ReconcileOptions,
    json: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut source = None;
    let mut dry_run = false;
    let mut user = None;
    let mut max_deletes = DEFAULT_MAX_DELETES;
    let mut include_unmanaged = false;
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
                source = Some(
                    IdpKind::parse(&v)
                        .ok_or_else(|| "--source takes okta, auth0 or entra".to_owned())?,
                );
            }
            "--dry-run" => dry_run = true,
            "--user" => user = Some(value("--user")?),
            "--max-deletes" => {
                max_deletes = value("--max-deletes")?
                    .parse()
                    .map_err(|_| "--max-deletes takes a number (0 or more)".to_owned())?;
            }
            "--include-unmanaged" => include_unmanaged = true,
            "--json" => json = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let source = source.ok_or_else(|| "--source okta|auth0|entra is required".to_owned())?;
    Ok(Args {
        options: ReconcileOptions {
            source,
            dry_run,
            user,
            max_deletes,
            include_unmanaged,
        },
        json,
    })
}

/// Logs to stderr (stdout carries the report): JSON lines by default, as
/// the other commands write them, or readable ones on a terminal.
pub(crate) fn init_logging(raw: &RawConfig) -> Result<(), String> {
    use relay_server::logging::{LogFormat, init_stderr};
    let format = LogFormat::parse(optional(raw, "RELAY_LOG_FORMAT"))?.unwrap_or(
        if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        },
    );
    init_stderr(format, "info")
}

/// Runs the command and answers its exit code.
pub(crate) async fn command(raw: &RawConfig, args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::from(EXIT_CONVERGED);
    }
    let args = match parse(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = init_logging(raw) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let report = match run_from_config(raw, &args.options).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(match e {
                ReconcileError::Config(_) => EXIT_USAGE,
                ReconcileError::Idp { .. } => EXIT_IDP_ERROR,
                ReconcileError::Duo(_) => EXIT_DUO_ERROR,
            });
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot write the report: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        print!("{}", report.render_table());
    }
    ExitCode::from(match report.status {
        RunStatus::Converged => EXIT_CONVERGED,
        RunStatus::Drift | RunStatus::Incomplete => EXIT_DRIFT,
        RunStatus::CapExceeded => EXIT_CAP,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_parse_with_spaces_or_equals() {
        let a = args(&[
            "--source",
            "auth0",
            "--dry-run",
            "--user=jane@example.com",
            "--max-deletes",
            "0",
            "--include-unmanaged",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            a.options,
            ReconcileOptions {
                source: IdpKind::Auth0,
                dry_run: true,
                user: Some("jane@example.com".into()),
                max_deletes: 0,
                include_unmanaged: true,
            }
        );
        assert!(a.json);
        let a = args(&["--source=okta"]).unwrap();
        assert_eq!(a.options, ReconcileOptions::new(IdpKind::Okta));
        assert!(!a.json);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        for (list, expected) in [
            (&[][..], "--source okta|auth0|entra is required"),
            (
                &["--source", "azure"][..],
                "--source takes okta, auth0 or entra",
            ),
            (&["--source"][..], "--source needs a value"),
            (
                &["--source", "okta", "--max-deletes", "-1"][..],
                "--max-deletes takes a number",
            ),
            (&["--source", "okta", "--force"][..], "unknown argument"),
        ] {
            let err = args(list).unwrap_err();
            assert!(err.contains(expected), "{list:?}: {err}");
        }
    }
}
