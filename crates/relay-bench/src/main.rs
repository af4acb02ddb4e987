//! `relay-bench`: the load harness.
//!
//! Starts `duo-sim` seeded with a large tenant and `idp-duo-relay serve` in
//! front of it (two child processes), replays a generated, realistic event mix
//! over HTTP from this process, and reports events/s, hook acknowledgement
//! latency (p50/p99/max), Duo calls per event type against the minimum that
//! type needs, the relay's peak RSS, and process start → first 200.
//! Results go to `<out>/results.json`, `<out>/results.md` and
//! `<out>/latency.svg`.
//!
//! ```sh
//! cargo run --release -p relay-bench -- [--users 20000] [--groups 5000] [--events 5000] [--concurrency 16] [--out bench/out]
//! ```
//!
//! The state path (`--mode queue`): `--rate N` sends open loop at N
//! deliveries/s (latency counted from each delivery's scheduled time, so a
//! relay that falls behind is not hidden); `--relay-cpus 0` pins the relay
//! (`taskset`); `--state-dir DIR` puts `RELAY_STATE_DIR` on a chosen disk;
//! `--relay-bin PATH` runs another build of the relay (before/after in one
//! run); `--no-drain` stops once every delivery is answered and reports
//! the backlog and the relay's memory then (with `--duo-latency-ms 60000`
//! the workers hardly drain, so the backlog is what was sent).
//!
//! `--scenario` picks what to show (issue 14): `mix` (the default above);
//! `unaliased` (Duo accounts without the relay's alias: the link is paid
//! once); `cold-groups` (membership adds on a never-listed index, then the
//! relay restarted on its stored index, the first event of each phase sent
//! alone); `new-groups` (every add to a group Duo lacks); `throttled` (queue
//! mode, the mix with and without injected 429s — `--duo-429`, default 0.1
//! — the Duo pace off and on, four runs of the same binary in one, `--repeat
//! N` rounds of them interleaved, medians on top); and
//! `backlog` (queue mode, `--no-drain` with the simulator answering after
//! 60 s: the relay's memory with `--events` pending).

mod plot;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::workload::{Delivery, Workload};

const SECRET: &str = "bench-shared-secret-0123456789";
const HOST: &str = "api-bench.duosecurity.com";
const IKEY: &str = "DIBENCH0000000000000";
const SKEY: &str = "benchsecretkeybenchsecretkeybenchsecret0";

#[derive(Debug, Clone)]
struct Args {
    users: usize,
    groups: usize,
    events: usize,
    concurrency: usize,
    out: PathBuf,
    seed: u64,
    /// `sync` (apply inside the request) or `queue` (RELAY_MODE=queue).
    mode: String,
    /// The relay's `DUO_RATE_PER_MINUTE`: `off` by default, since the
    /// simulator has no rate limit and the bench measures the relay.
    duo_rate: String,
    /// Probability of an injected Duo 429 per call (`--duo-429 0.1`).
    duo_429: f64,
    /// Open loop: deliveries per second (0: closed loop, `concurrency`
    /// senders).
    rate: f64,
    /// The relay binary to run (default: the one built from this tree).
    relay_bin: Option<PathBuf>,
    /// `taskset -c` CPU list for the relay.
    relay_cpus: Option<String>,
    /// `RELAY_STATE_DIR` (default `<out>/state`).
    state_dir: Option<PathBuf>,
    /// Queue mode: do not wait for the workers to drain the queue.
    no_drain: bool,
    /// Latency the simulator adds to every Duo answer (`--duo-latency-ms`;
    /// a large one holds the workers, so the backlog is what was sent).
    duo_latency_ms: u64,
    scenario: Scenario,
    /// `throttled`: rounds of its four runs.
    repeat: usize,
}

/// What the run shows (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Mix,
    Unaliased,
    ColdGroups,
    NewGroups,
    Throttled,
    Backlog,
}

impl Scenario {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "mix" => Self::Mix,
            "unaliased" => Self::Unaliased,
            "cold-groups" => Self::ColdGroups,
            "new-groups" => Self::NewGroups,
            "throttled" => Self::Throttled,
            "backlog" => Self::Backlog,
            _ => bail!(
                "--scenario must be mix, unaliased, cold-groups, new-groups, throttled or backlog"
            ),
        })
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        users: 20_000,
        groups: 5_000,
        events: 5_000,
        concurrency: 16,
        out: PathBuf::from("bench/out"),
        seed: 7,
        mode: "sync".to_owned(),
        duo_rate: "off".to_owned(),
        duo_429: 0.0,
        rate: 0.0,
        relay_bin: None,
        relay_cpus: None,
        state_dir: None,
        no_drain: false,
        duo_latency_ms: 0,
        scenario: Scenario::Mix,
        repeat: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => a.users = value()?.parse()?,
            "--groups" => a.groups = value()?.parse()?,
            "--events" => a.events = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--out" => a.out = PathBuf::from(value()?),
            "--seed" => a.seed = value()?.parse()?,
            "--mode" => a.mode = value()?,
            "--duo-rate" => a.duo_rate = value()?,
            "--duo-429" => a.duo_429 = value()?.parse()?,
            "--rate" => a.rate = value()?.parse()?,
            "--relay-bin" => a.relay_bin = Some(PathBuf::from(value()?)),
            "--relay-cpus" => a.relay_cpus = Some(value()?),
            "--state-dir" => a.state_dir = Some(PathBuf::from(value()?)),
            "--no-drain" => a.no_drain = true,
            "--duo-latency-ms" => a.duo_latency_ms = value()?.parse()?,
            "--scenario" => a.scenario = Scenario::parse(&value()?)?,
            "--repeat" => a.repeat = value()?.parse::<usize>()?.max(1),
            "--help" | "-h" => {
                println!(
                    "relay-bench [--scenario mix|unaliased|cold-groups|new-groups|throttled|backlog] [--repeat N] [--users N] [--groups N] [--events N] [--concurrency N] [--out DIR] [--seed N] [--mode sync|queue] [--duo-rate off|CALLS_PER_MIN] [--duo-429 P] [--rate DELIVERIES_PER_S] [--relay-bin PATH] [--relay-cpus LIST] [--state-dir DIR] [--no-drain] [--duo-latency-ms N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if a.mode != "sync" && a.mode != "queue" {
        bail!("--mode must be sync or queue");
    }
    if a.scenario == Scenario::Backlog {
        a.mode = "queue".to_owned();
        a.no_drain = true;
        if a.duo_latency_ms == 0 {
            a.duo_latency_ms = 60_000;
        }
    }
    if a.users < 20 || a.groups < 2 || a.events == 0 || a.concurrency == 0 {
        bail!("need --users >= 20, --groups >= 2, --events >= 1, --concurrency >= 1");
    }
    Ok(a)
}

/// Kills the child when dropped, so an early error leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Builds the two binaries with this binary's own profile and returns their
/// directory.
fn build_binaries() -> anyhow::Result<PathBuf> {
    let release = !cfg!(debug_assertions);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "duo-sim",
        "-p",
        "relay-cli",
        "--bins",
    ]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of duo-sim and relay-cli failed");
    }
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("binary directory")?.to_path_buf())
}

async fn wait_for_200(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("{url} did not answer 200 within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_for_port(port: u16, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if started.elapsed() > limit {
            bail!("nothing listens on port {port} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Peak resident set size of a process, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system) a process has used, from /proc (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Seconds a process's threads spent runnable but waiting for a CPU
/// (`/proc/<pid>/task/*/schedstat`, second field, ns): on a shared machine,
/// how much of a latency figure is other processes holding the CPU.
fn runqueue_wait_seconds(pid: u32) -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        total += text
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total as f64 / 1e9)
}

/// The 1-minute load average (`/proc/loadavg`): the machine is shared.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The filesystem type holding `path` (`ext4`, `tmpfs`), from
/// /proc/self/mounts: the longest mount point that is a prefix.
fn filesystem(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, fs) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mount)
                .then(|| (mount.len(), fs.to_owned()))
        })
        .max()
        .map(|(_, fs)| fs)
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    /// Seconds since the replay started, when the request was sent.
    at_s: f64,
    latency_ms: f64,
    status: u16,
    events: usize,
}

#[derive(Debug, Default, Clone, Serialize)]
struct TypeStats {
    events: u64,
    duo_calls: u64,
    min_calls: u64,
    max_calls: u64,
    /// The fewest calls this type can need (see `workload::minimum_calls`).
    minimum_needed: Option<u64>,
    outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct Results {
    /// Which part of the scenario this is.
    phase: String,
    /// The relay's settings that differ between phases.
    relay_env: BTreeMap<String, String>,
    /// Of the phase's first delivery, sent alone before the others: its
    /// Duo calls and acknowledgement time.
    first_event_duo_calls: Option<u64>,
    first_ack_ms: Option<f64>,
    /// Open-loop target deliveries/s (0: closed loop).
    rate: f64,
    /// Deliveries answered per second while sending.
    acks_per_second: f64,
    relay_bin: String,
    relay_cpus: Option<String>,
    state_dir: String,
    state_filesystem: Option<String>,
    /// Queue mode: pending when sending ended (`--no-drain`: the backlog).
    pending_at_end: Option<u64>,
    /// The relay's resident set when sending ended.
    relay_rss_at_end_mib: Option<f64>,
    /// CPU time the relay used while the deliveries were sent, per
    /// delivery answered (µs).
    relay_cpu_us_per_ack: Option<f64>,
    /// Seconds the relay's threads waited for a CPU while sending (other
    /// processes on its core).
    relay_runqueue_wait_s: Option<f64>,
    load_average_before: Option<f64>,
    load_average_after: Option<f64>,
    users: usize,
    groups: usize,
    deliveries: usize,
    events: usize,
    concurrency: usize,
    mode: String,
    /// Until the last delivery was answered (queue mode answers before applying).
    sent_seconds: f64,
    profile: &'static str,
    seconds: f64,
    events_per_second: f64,
    ack_latency_ms: Latency,
    non_200: usize,
    duo_calls_total: u64,
    duo_calls_by_type: BTreeMap<String, TypeStats>,
    relay_peak_rss_mib: Option<f64>,
    start_to_first_200_ms: f64,
    duo_sim_seed_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The relay's `/healthz` answer (`Null` when it does not answer).
async fn health(client: &reqwest::Client, base: &str) -> serde_json::Value {
    match client.get(format!("{base}/healthz")).send().await {
        Ok(r) => serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Sends `deliveries` open loop: delivery `i` at `started + i / rate`,
/// each on its own task, whatever the relay's answers take. Latency counts
/// from the scheduled time, so a relay (or sender) that falls behind shows
/// in the figures instead of slowing the offered load.
async fn open_loop(
    deliveries: Vec<Delivery>,
    rate: f64,
    client: reqwest::Client,
    base: String,
    samples: Arc<Mutex<Vec<Sample>>>,
    started: Instant,
) {
    let mut inflight = tokio::task::JoinSet::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (client, base, samples) = (client.clone(), base.clone(), samples.clone());
        inflight.spawn(async move {
            let status = client
                .post(format!("{base}{}", d.path))
                .header("Authorization", SECRET)
                .header("Content-Type", "application/json")
                .body(d.body)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            let latency_ms = due.elapsed().as_secs_f64() * 1000.0;
            if let Ok(mut s) = samples.lock() {
                s.push(Sample {
                    at_s: (due - started).as_secs_f64(),
                    latency_ms,
                    status,
                    events: d.events,
                });
            }
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// Reads the relay's per-event summary lines (JSON) from its stdout.
fn collect_event_lines(
    stdout: std::process::ChildStdout,
    sink: Arc<Mutex<Vec<serde_json::Value>>>,
) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v.get("message").and_then(|m| m.as_str()) == Some("event")
                && let Ok(mut lines) = sink.lock()
            {
                lines.push(v);
            }
        }
    });
}

/// The Duo simulator, seeded with a tenant.
struct Sim {
    _proc: Proc,
    url: String,
    seed_seconds: f64,
}

/// Starts the simulator with `seed`, injecting `rate_429` 429s and the
/// answer latency of `args`.
async fn start_sim(
    args: &Args,
    bin: &Path,
    client: &reqwest::Client,
    seed: &duo_sim::Seed,
    rate_429: f64,
) -> anyhow::Result<Sim> {
    let seed_path = args.out.join("seed.json");
    std::fs::write(&seed_path, serde_json::to_vec(seed)?)?;
    let sim_port = free_port()?;
    let seed_started = Instant::now();
    let proc = Proc(
        Command::new(bin.join("duo-sim"))
            .args([
                "--port",
                &sim_port.to_string(),
                "--host",
                HOST,
                "--ikey",
                IKEY,
                "--skey",
                SKEY,
            ])
            .arg("--seed")
            .arg(&seed_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting duo-sim")?,
    );
    wait_for_port(sim_port, Duration::from_secs(120)).await?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    let url = format!("http://127.0.0.1:{sim_port}");
    client
        .post(format!("{url}/_sim/calls/reset"))
        .send()
        .await?;
    if rate_429 > 0.0 || args.duo_latency_ms > 0 {
        client
            .post(format!("{url}/_sim/faults"))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "rate_429": rate_429,
                    "latency_ms": args.duo_latency_ms,
                    "seed": args.seed,
                })
                .to_string(),
            )
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(Sim {
        _proc: proc,
        url,
        seed_seconds,
    })
}

/// One relay run against a simulator: what differs between the phases of
/// a scenario.
struct Phase {
    name: String,
    deliveries: Vec<Delivery>,
    /// `DUO_RATE_PER_MINUTE` of this run.
    duo_rate: String,
    mode: String,
    /// Start from an empty `RELAY_STATE_DIR` (else keep the last run's:
    /// a restart).
    fresh_state: bool,
    /// Send the first delivery alone, before the others.
    first_alone: bool,
}

/// Runs the relay on `sim` for one phase.
#[allow(clippy::too_many_lines)]
async fn run_phase(
    args: &Args,
    bin: &Path,
    client: &reqwest::Client,
    sim: &Sim,
    phase: Phase,
) -> anyhow::Result<(Results, Vec<Sample>, Vec<serde_json::Value>)> {
    // The relay, timed from spawn to its first 200.
    let relay_port = free_port()?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| args.out.join("state"));
    if phase.fresh_state {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    std::fs::create_dir_all(&state_dir)?;
    let relay_bin = args
        .relay_bin
        .clone()
        .unwrap_or_else(|| bin.join("idp-duo-relay"));
    let mut command = match &args.relay_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(&relay_bin);
            c
        }
        None => Command::new(&relay_bin),
    };
    let relay_env: BTreeMap<String, String> = [
        ("RELAY_MODE", phase.mode.as_str()),
        ("RELAY_QUEUE_CONCURRENCY", "8"),
        ("RELAY_QUEUE_BACKOFF_MS", "200"),
        ("DUO_RATE_PER_MINUTE", phase.duo_rate.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let load_before = load_average();
    let spawned = Instant::now();
    let mut relay = Proc(
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs([
                ("DUO_API_HOST", HOST.to_owned()),
                ("DUO_IKEY", IKEY.to_owned()),
                ("DUO_SKEY", SKEY.to_owned()),
                ("DUO_API_URL", sim.url.clone()),
                ("OKTA_AUTH_SECRET", SECRET.to_owned()),
                ("AUTH0_AUTH_SECRET", SECRET.to_owned()),
                ("PORT", relay_port.to_string()),
                ("RELAY_LOG_FORMAT", "json".to_owned()),
                ("RUST_LOG", "info,duo_sim=warn".to_owned()),
            ])
            .envs(&relay_env)
            .env("RELAY_STATE_DIR", &state_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting idp-duo-relay serve")?,
    );
    let lines = Arc::new(Mutex::new(Vec::new()));
    if let Some(stdout) = relay.0.stdout.take() {
        collect_event_lines(stdout, lines.clone());
    }
    let base = format!("http://127.0.0.1:{relay_port}");
    let first_200 = {
        let waited =
            wait_for_200(client, &format!("{base}/healthz"), Duration::from_secs(60)).await?;
        (spawned.elapsed().max(waited)).as_secs_f64() * 1000.0
    };

    // Replay the deliveries: open loop at --rate, or N concurrent senders.
    let mut deliveries = phase.deliveries;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut first = None;
    if phase.first_alone && !deliveries.is_empty() {
        let d = deliveries.remove(0);
        let id = serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|v| v["data"]["events"][0]["uuid"].as_str().map(str::to_owned));
        let sent = Instant::now();
        let status = client
            .post(format!("{base}{}", d.path))
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            .body(d.body)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut s) = samples.lock() {
            s.push(Sample {
                at_s: 0.0,
                latency_ms,
                status,
                events: d.events,
            });
        }
        first = id.map(|id| (id, latency_ms));
    }
    let queue = Arc::new(Mutex::new(deliveries.clone().into_iter()));
    let cpu_before = cpu_seconds(relay.0.id());
    let wait_before = runqueue_wait_seconds(relay.0.id());
    let mut tasks = Vec::new();
    if args.rate > 0.0 {
        tasks.push(tokio::spawn(open_loop(
            deliveries,
            args.rate,
            client.clone(),
            base.clone(),
            samples.clone(),
            started,
        )));
    }
    let senders = if args.rate > 0.0 { 0 } else { args.concurrency };
    for _ in 0..senders {
        let queue = queue.clone();
        let samples = samples.clone();
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next: Option<Delivery> = queue.lock().ok().and_then(|mut q| q.next());
                let Some(d) = next else { break };
                let sent = Instant::now();
                let at_s = started.elapsed().as_secs_f64();
                let status = client
                    .post(format!("{base}{}", d.path))
                    .header("Authorization", SECRET)
                    .header("Content-Type", "application/json")
                    .body(d.body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                if let Ok(mut s) = samples.lock() {
                    s.push(Sample {
                        at_s,
                        latency_ms,
                        status,
                        events: d.events,
                    });
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let sent_seconds = started.elapsed().as_secs_f64();
    let rss_at_end = status_kib(relay.0.id(), "VmRSS:").map(|k| k as f64 / 1024.0);
    let wait_sending = wait_before
        .zip(runqueue_wait_seconds(relay.0.id()))
        .map(|(a, b)| b - a);
    let cpu_sending = cpu_before
        .zip(cpu_seconds(relay.0.id()))
        .map(|(a, b)| b - a);
    let queued = phase.mode == "queue";
    let pending_at_end = if queued {
        health(client, &base).await["queue"]["pending"].as_u64()
    } else {
        None
    };
    // Queue mode: the IdP got its answers; now wait for the workers to apply
    // everything (bounded), so events/s measures applied events in both modes.
    if queued && !args.no_drain {
        let drained = Instant::now();
        loop {
            let health = health(client, &base).await;
            let q = &health["queue"];
            if q["pending"] == 0 && q["in_flight"] == 0 {
                break;
            }
            if drained.elapsed() > Duration::from_secs(1800) {
                bail!("the relay's queue did not drain within 30 min: {health}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Let the last summary lines reach the reader thread.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak_rss = peak_rss_kib(relay.0.id()).map(|k| k as f64 / 1024.0);
    let load_after = load_average();
    drop(relay);

    // Figures.
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let events_sent: usize = samples.iter().map(|s| s.events).sum();
    let mut by_type: BTreeMap<String, TypeStats> = BTreeMap::new();
    let mut total_calls = 0;
    let mut first_calls = None;
    for line in &lines {
        let event_type = line["event_type"].as_str().unwrap_or("?").to_owned();
        let calls = line["duo_calls"].as_u64().unwrap_or(0);
        let outcome = line["outcome"].as_str().unwrap_or("?").to_owned();
        if let Some((id, _)) = &first
            && line["event_id"]
                .as_str()
                .is_some_and(|e| e.ends_with(id.as_str()))
        {
            first_calls = Some(calls);
        }
        total_calls += calls;
        let stats = by_type.entry(event_type.clone()).or_default();
        if stats.events == 0 {
            stats.min_calls = calls;
        }
        stats.events += 1;
        stats.duo_calls += calls;
        stats.min_calls = stats.min_calls.min(calls);
        stats.max_calls = stats.max_calls.max(calls);
        stats.minimum_needed = workload::minimum_calls(&event_type);
        *stats.outcomes.entry(outcome).or_default() += 1;
    }
    let deliveries_answered = samples.len();
    let results = Results {
        phase: phase.name,
        relay_env,
        first_event_duo_calls: first_calls,
        first_ack_ms: first.map(|(_, ms)| ms),
        rate: args.rate,
        acks_per_second: deliveries_answered as f64 / sent_seconds.max(1e-9),
        relay_bin: relay_bin.display().to_string(),
        relay_cpus: args.relay_cpus.clone(),
        state_dir: state_dir.display().to_string(),
        state_filesystem: filesystem(&state_dir),
        pending_at_end,
        relay_rss_at_end_mib: rss_at_end,
        relay_runqueue_wait_s: wait_sending,
        relay_cpu_us_per_ack: cpu_sending.map(|cpu| cpu * 1e6 / deliveries_answered.max(1) as f64),
        load_average_before: load_before,
        load_average_after: load_after,
        users: args.users,
        groups: args.groups,
        deliveries: samples.len(),
        events: events_sent,
        concurrency: args.concurrency,
        mode: phase.mode.clone(),
        sent_seconds,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        seconds,
        events_per_second: events_sent as f64 / seconds.max(1e-9),
        ack_latency_ms: Latency {
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            max: latencies.last().copied().unwrap_or(0.0),
        },
        non_200: samples.iter().filter(|s| s.status != 200).count(),
        duo_calls_total: total_calls,
        duo_calls_by_type: by_type,
        relay_peak_rss_mib: peak_rss,
        start_to_first_200_ms: first_200,
        duo_sim_seed_seconds: sim.seed_seconds,
    };
    Ok((results, samples, lines))
}

#[tokio::main]
#[allow(clippy::too_many_lines)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let bin = build_binaries()?;
    let client = reqwest::Client::builder()
        // Open loop: keep every connection a burst opened, so the relay is
        // not measured accepting connections the client keeps churning.
        .pool_max_idle_per_host(if args.rate > 0.0 {
            1024
        } else {
            args.concurrency
        })
        .build()?;
    let (users, groups, events, seed) = (args.users, args.groups, args.events, args.seed);
    let phase = |name: String, deliveries: Vec<Delivery>| Phase {
        name,
        deliveries,
        duo_rate: args.duo_rate.clone(),
        mode: args.mode.clone(),
        fresh_state: true,
        first_alone: false,
    };
    let mut phases = Vec::new();
    let mut summary = None;
    match args.scenario {
        Scenario::Mix | Scenario::Backlog | Scenario::Unaliased | Scenario::NewGroups => {
            let (work, name, first_alone) = match args.scenario {
                Scenario::Unaliased => (
                    Workload::unaliased(users, groups, events, seed),
                    "Duo accounts without the relay's alias (one delivery each: add, then remove)",
                    false,
                ),
                Scenario::NewGroups => (
                    Workload::new_groups(users, groups, events, seed),
                    "every membership add to a group Duo lacks",
                    true,
                ),
                Scenario::Backlog => (
                    Workload::generate(users, groups, events, seed),
                    "the backlog: the mix enqueued while Duo answers after --duo-latency-ms",
                    false,
                ),
                _ => (
                    Workload::generate(users, groups, events, seed),
                    "the event mix",
                    false,
                ),
            };
            let sim = start_sim(&args, &bin, &client, &work.seed, args.duo_429).await?;
            let mut p = phase(name.to_owned(), work.deliveries);
            p.first_alone = first_alone;
            phases.push(run_phase(&args, &bin, &client, &sim, p).await?);
        }
        Scenario::ColdGroups => {
            let cold = Workload::membership_adds(users, groups, events, seed, "cold");
            let sim = start_sim(&args, &bin, &client, &cold.seed, args.duo_429).await?;
            let mut p = phase(
                format!("membership adds, {groups} groups, the index never listed"),
                cold.deliveries,
            );
            p.first_alone = true;
            phases.push(run_phase(&args, &bin, &client, &sim, p).await?);
            // The relay restarted on the same state: its stored index.
            let warm = Workload::membership_adds(users, groups, events, seed + 1, "restarted");
            let mut p = phase(
                format!("membership adds, {groups} groups, after a restart (the index stored)"),
                warm.deliveries,
            );
            p.first_alone = true;
            p.fresh_state = false;
            phases.push(run_phase(&args, &bin, &client, &sim, p).await?);
        }
        Scenario::Throttled => {
            let work = Workload::generate(users, groups, events, seed);
            let rate_429 = if args.duo_429 > 0.0 {
                args.duo_429
            } else {
                0.1
            };
            // On: a ceiling the simulator never reaches, so what the pace
            // changes is its answer to the 429s.
            let on = if args.duo_rate == "off" {
                "120000".to_owned()
            } else {
                args.duo_rate.clone()
            };
            let configs = [
                ("off".to_owned(), 0.0),
                ("off".to_owned(), rate_429),
                (on.clone(), 0.0),
                (on, rate_429),
            ];
            // Rounds of the four, interleaved, so a change in the shared
            // machine's load falls on every configuration alike.
            for round in 1..=args.repeat {
                for (pace, rate) in &configs {
                    // A fresh tenant and state for each: the mix deletes users.
                    let sim = start_sim(&args, &bin, &client, &work.seed, *rate).await?;
                    let mut p = phase(
                        format!(
                            "queue mode, Duo pace {pace}, {:.0}% injected 429s (round {round})",
                            rate * 100.0
                        ),
                        work.deliveries.clone(),
                    );
                    p.mode = "queue".to_owned();
                    p.duo_rate.clone_from(pace);
                    phases.push(run_phase(&args, &bin, &client, &sim, p).await?);
                }
            }
            summary = Some(throttled_summary(&phases, &configs));
        }
    }
    write_reports(&args.out, &phases, summary.as_deref())?;
    let lines: Vec<serde_json::Value> = phases.iter().flat_map(|(_, _, l)| l.clone()).collect();
    write_failures(&args.out, &lines)?;
    let non_200: usize = phases.iter().map(|(r, _, _)| r.non_200).sum();
    if non_200 > 0 {
        bail!("{non_200} deliveries were not answered 200");
    }
    Ok(())
}

/// Every event line whose outcome is a failure, one JSON line each, so a
/// non-200 answer can be traced to the Duo call that failed.
fn write_failures(out: &Path, lines: &[serde_json::Value]) -> anyhow::Result<()> {
    let mut text = String::new();
    for line in lines {
        if line["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("failed"))
        {
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    std::fs::write(out.join("failures.jsonl"), text)?;
    Ok(())
}

/// `throttled`: each configuration's median applied events/s over the
/// rounds, and what the injected 429s cost against the same pace without.
fn throttled_summary(
    phases: &[(Results, Vec<Sample>, Vec<serde_json::Value>)],
    configs: &[(String, f64)],
) -> String {
    let median = |pace: &str, rate: f64| -> (f64, Vec<f64>) {
        let mut runs: Vec<f64> = phases
            .iter()
            .map(|(r, _, _)| r)
            .filter(|r| {
                r.relay_env.get("DUO_RATE_PER_MINUTE").map(String::as_str) == Some(pace)
                    && r.phase
                        .contains(&format!(", {:.0}% injected", rate * 100.0))
            })
            .map(|r| r.events_per_second)
            .collect();
        runs.sort_by(f64::total_cmp);
        (runs.get(runs.len() / 2).copied().unwrap_or(0.0), runs)
    };
    let mut md = String::from(
        "# relay-bench: what injected Duo 429s cost the queue's apply throughput\n\n\
         | Duo pace | injected 429s | applied events/s, median (runs) | cost against no 429s |\n| --- | --- | --- | --- |\n",
    );
    for (pace, rate) in configs {
        let (m, runs) = median(pace, *rate);
        let (base, _) = median(pace, 0.0);
        let cost = if *rate > 0.0 && base > 0.0 {
            format!("{:.0}%", (1.0 - m / base) * 100.0)
        } else {
            "-".to_owned()
        };
        md.push_str(&format!(
            "| {pace} | {:.0}% | {m:.0} ({}) | {cost} |\n",
            rate * 100.0,
            runs.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    md.push('\n');
    md
}

fn write_reports(
    out: &Path,
    phases: &[(Results, Vec<Sample>, Vec<serde_json::Value>)],
    summary: Option<&str>,
) -> anyhow::Result<()> {
    let results: Vec<&Results> = phases.iter().map(|(r, _, _)| r).collect();
    if let [one] = results.as_slice() {
        std::fs::write(out.join("results.json"), serde_json::to_vec_pretty(one)?)?;
    } else {
        std::fs::write(
            out.join("results.json"),
            serde_json::to_vec_pretty(&results)?,
        )?;
    }
    let md: String = summary
        .into_iter()
        .map(str::to_owned)
        .chain(results.iter().map(|r| report(r)))
        .collect();
    std::fs::write(out.join("results.md"), &md)?;
    if let Some((_, samples, _)) = phases.last() {
        let mut csv = String::from("at_s,latency_ms,status,events\n");
        for s in samples {
            csv.push_str(&format!(
                "{:.4},{:.3},{},{}\n",
                s.at_s, s.latency_ms, s.status, s.events
            ));
        }
        std::fs::write(out.join("samples.csv"), csv)?;
        std::fs::write(
            out.join("latency.svg"),
            plot::latency_svg(samples.iter().map(|s| (s.at_s, s.latency_ms))),
        )?;
    }
    println!("{md}");
    println!(
        "written: {}/results.json, results.md, latency.svg",
        out.display()
    );
    Ok(())
}

/// One phase's figures as Markdown.
fn report(r: &Results) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "# relay-bench ({} build): {}\n\n| figure | value |\n| --- | --- |\n\
         | tenant | {} users, {} groups |\n| mode | {} (all answered in {:.1} s) |\n| deliveries / events | {} / {} |\n| concurrency | {} |\n\
         | events/s | {:.0} |\n| ack latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |\n\
         | non-200 answers | {} |\n| Duo calls | {} ({:.2} per event) |\n| relay peak RSS | {} |\n\
         | relay start → first 200 | {:.0} ms |\n\n",
        r.profile,
        r.phase,
        r.users,
        r.groups,
        r.mode,
        r.sent_seconds,
        r.deliveries,
        r.events,
        r.concurrency,
        r.events_per_second,
        r.ack_latency_ms.p50,
        r.ack_latency_ms.p99,
        r.ack_latency_ms.max,
        r.non_200,
        r.duo_calls_total,
        r.duo_calls_total as f64 / r.events.max(1) as f64,
        r.relay_peak_rss_mib.map_or("n/a".into(), |m| format!("{m:.1} MiB")),
        r.start_to_first_200_ms,
    ));
    md.push_str(&format!(
        "| state path | | \n| --- | --- |\n| offered load | {} |\n| acks/s while sending | {:.0} |\n\
         | relay binary | {} |\n| relay CPUs | {} |\n| RELAY_STATE_DIR | {} ({}) |\n\
         | pending when sending ended | {} |\n| relay RSS when sending ended | {} |\n\
         | relay CPU per delivery answered | {} |\n| relay waited for a CPU while sending | {} |\n\
         | load average before / after | {} / {} |\n\n",
        if r.rate > 0.0 {
            format!("open loop, {:.0} deliveries/s", r.rate)
        } else {
            format!("closed loop, {} senders", r.concurrency)
        },
        r.acks_per_second,
        r.relay_bin,
        r.relay_cpus.as_deref().unwrap_or("any"),
        r.state_dir,
        r.state_filesystem.as_deref().unwrap_or("?"),
        r.pending_at_end.map_or("-".into(), |p| p.to_string()),
        r.relay_rss_at_end_mib.map_or("n/a".into(), |m| format!("{m:.1} MiB")),
        r.relay_cpu_us_per_ack.map_or("n/a".into(), |c| format!("{c:.0} µs")),
        r.relay_runqueue_wait_s.map_or("n/a".into(), |w| format!("{w:.2} s")),
        r.load_average_before.map_or("?".into(), |l| format!("{l:.2}")),
        r.load_average_after.map_or("?".into(), |l| format!("{l:.2}")),
    ));
    if let (Some(calls), Some(ms)) = (r.first_event_duo_calls, r.first_ack_ms) {
        md.push_str(&format!(
            "First delivery (sent alone): {calls} Duo calls, acknowledged in {ms:.1} ms.\n\n"
        ));
    }
    md.push_str(&format!(
        "Relay settings: {}.\n\n",
        r.relay_env
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md.push_str("| event type | events | Duo calls avg | min | max | minimum needed | outcomes |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for (t, s) in &r.duo_calls_by_type {
        md.push_str(&format!(
            "| {t} | {} | {:.2} | {} | {} | {} | {} |\n",
            s.events,
            s.duo_calls as f64 / s.events.max(1) as f64,
            s.min_calls,
            s.max_calls,
            s.minimum_needed.map_or("-".into(), |m| m.to_string()),
            s.outcomes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    md.push('\n');
    md
}
