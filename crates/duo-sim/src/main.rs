//! `duo-sim` binary: serves the simulator until Ctrl-C.
//!
//! `duo-sim [--port 9000] [--host api-example.duosecurity.com] [--ikey DI…]
//! [--skey …] [--bind 127.0.0.1] [--seed FILE.json] [--max-skew-secs 300]`

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use duo_sim::{DuoSim, Seed, SimConfig};

/// The binary listens on a fixed port by default (the library picks a random one).
const DEFAULT_PORT: u16 = 9000;

const USAGE: &str = "usage: duo-sim [--port N] [--host API_HOST] [--ikey IKEY] [--skey SKEY] \
[--bind ADDR] [--seed FILE.json] [--max-skew-secs N]";

#[derive(Debug)]
struct Args {
    cfg: SimConfig,
    seed: Option<String>,
}

/// Parses flags; anything not given keeps its [`SimConfig::default`] value
/// (with a notice, so nobody wonders which keys are in force).
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut cfg = SimConfig::default();
    let (mut port, mut bind, mut seed) = (None, None, None);
    let mut given = Vec::new();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--port" => {
                port = Some(
                    value
                        .parse::<u16>()
                        .map_err(|_| format!("--port: not a port: {value}"))?,
                )
            }
            "--host" => cfg.host = value,
            "--ikey" => cfg.ikey = value,
            "--skey" => cfg.skey = value,
            "--bind" => {
                bind = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| format!("--bind: not an IP address: {value}"))?,
                )
            }
            "--seed" => seed = Some(value),
            "--max-skew-secs" => {
                let secs = value
                    .parse::<u64>()
                    .map_err(|_| format!("--max-skew-secs: not a number: {value}"))?;
                cfg.max_skew = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
        given.push(flag);
    }
    let missing = |flag: &str| !given.iter().any(|g| g == flag);
    if missing("--host") {
        eprintln!("duo-sim: --host not given, using {}", cfg.host);
    }
    if missing("--ikey") {
        eprintln!("duo-sim: --ikey not given, using {}", cfg.ikey);
    }
    if missing("--skey") {
        eprintln!("duo-sim: --skey not given, using the built-in test secret key");
    }
    if port.is_none() {
        eprintln!("duo-sim: --port not given, using {DEFAULT_PORT}");
    }
    let ip = bind.unwrap_or(cfg.addr.ip());
    cfg.addr = SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT));
    Ok(Args { cfg, seed })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let seed = match &args.seed {
        None => None,
        Some(path) => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Seed>(&b).map_err(|e| e.to_string()))
        {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("duo-sim: --seed {path}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    // Seeded before it accepts a connection: an open port means ready.
    let sim = match DuoSim::start_seeded(args.cfg, seed).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("duo-sim: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "duo-sim listening on {} (API host {})",
        sim.base_url(),
        sim.config().host
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("duo-sim: cannot wait for Ctrl-C: {e}");
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags_parse_and_default() {
        let a = args(&[
            "--port",
            "9100",
            "--host",
            "api-x.duosecurity.com",
            "--bind",
            "0.0.0.0",
            "--max-skew-secs",
            "5",
        ])
        .expect("ok");
        assert_eq!(a.cfg.addr, "0.0.0.0:9100".parse().expect("addr"));
        assert_eq!(
            (a.cfg.host.as_str(), a.cfg.max_skew),
            ("api-x.duosecurity.com", Duration::from_secs(5))
        );
        assert_eq!(
            args(&[]).expect("ok").cfg.addr,
            "127.0.0.1:9000".parse().expect("addr")
        );
        assert!(args(&["--port"]).is_err());
        assert!(args(&["--port", "x"]).is_err());
        assert!(args(&["--nope", "1"]).is_err());
    }
}
