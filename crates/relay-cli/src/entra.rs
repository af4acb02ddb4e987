//! `idp-duo-relay entra subscribe --url URL`: creates or renews the relay's
//! Microsoft Graph subscriptions on Entra ID users and groups (see
//! `relay_core::source::entra::subscription`). Idempotent: run it once
//! after deploying, then on a schedule (daily keeps 27 days of margin on
//! the 28-day lifetime it asks for).

use std::process::ExitCode;

use relay_core::config::{RawConfig, optional};
use relay_core::source::EntraApi;
use relay_core::source::entra::subscription::ensure_subscriptions;

pub(crate) const USAGE: &str = "\
USAGE:
    idp-duo-relay entra subscribe --url https://HOST/entra

Creates the relay's Microsoft Graph subscriptions (users and groups,
created/updated/deleted, clientState = ENTRA_CLIENT_STATE), or renews them
when they exist. Graph validates a new subscription by calling the URL:
the relay must be running there with ENTRA_CLIENT_STATE set. Needs
ENTRA_TENANT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET (the app also needs
the permissions Graph asks of a subscription on users and groups).

    --url URL    the relay's notification URL (Azure: https://APP/api/entra)

EXIT CODES: 0 done, 1 Graph refused or failed, 2 usage or configuration
";

/// Runs the command and answers its exit code.
pub(crate) async fn command(raw: &RawConfig, args: &[String]) -> ExitCode {
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::from(if args.is_empty() { 2 } else { 0 });
    }
    let url = match parse(args) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let api = match EntraApi::from_config(raw) {
        Ok(Some(api)) => api,
        Ok(None) => {
            eprintln!(
                "error: ENTRA_TENANT_ID is not set; entra subscribe needs ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
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
    match ensure_subscriptions(&api, &url, state, relay_core::state::now_ms()).await {
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

/// `subscribe --url URL` (or `--url=URL`): the URL, https (http only to a
/// loopback address, for tests).
fn parse(args: &[String]) -> Result<String, String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("subscribe") {
        return Err("the only subcommand is subscribe".into());
    }
    let mut url = None;
    while let Some(arg) = it.next() {
        match arg.split_once('=') {
            Some(("--url", v)) => url = Some(v.to_owned()),
            _ if arg == "--url" => {
                url = Some(it.next().ok_or("--url needs a value")?.clone());
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let parsed = reqwest::Url::parse(&url).map_err(|_| "--url must be a URL".to_owned())?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("--url must be https (Graph delivers only to https)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_url_is_required_and_https() {
        assert_eq!(
            parse(&args(&[
                "subscribe",
                "--url",
                "https://relay.example.com/entra"
            ]))
            .unwrap(),
            "https://relay.example.com/entra"
        );
        assert!(parse(&args(&["subscribe", "--url=http://127.0.0.1:8080/entra"])).is_ok());
        for bad in [
            &["subscribe"][..],
            &["subscribe", "--url", "http://relay.example.com/entra"],
            &["subscribe", "--url"],
            &["renew"],
            &["subscribe", "--url", "x", "--force"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
