//! Catch-up: read the IdP's own event log from a checkpoint and feed every
//! record through the same pipeline, with the same idempotency keys, as the
//! hook that should have delivered it (issue 16).
//!
//! Event hooks lose deliveries by design (Okta retries a failed delivery
//! once; Auth0 streams pause), and `reconcile` heals state but not actions:
//! an MFA reset whose delivery was lost stays lost. Both IdPs keep the same
//! records in a log the relay can read:
//! - Okta: the System Log (`GET /api/v1/logs`), the hook's own `LogEvent`
//!   objects, keyed by `uuid` ([`okta_log`]);
//! - Auth0: the tenant logs (`GET /api/v2/logs`), the Log Streams' own
//!   records, keyed by `log_id` ([`auth0_log`]).
//!
//! Entra ID keeps no log of its change notifications; its scheduled
//! catch-up ([`entra`]) renews the Graph subscriptions, reads what changed
//! by delta query ([`entra_delta`]) and polls the audit log for MFA resets
//! ([`entra_audit`]), and reports through the same summary line.
//!
//! A record already delivered by the hook is a duplicate (0 Duo calls); a
//! missed one is applied; stale-event protection (event-time watermarks)
//! holds as for the hook, since it is the same [`Relay::apply_event`].
//! Pages are read in the log's order and each page's records in event-time
//! order. The checkpoint ([`checkpoint`]) moves past a page only when every
//! record of it was applied, skipped or finally refused; a transient
//! failure stops the run there, and the next run reads that page again
//! (its applied records are then duplicates).

pub mod auth0_log;
pub mod checkpoint;
pub mod entra;
pub mod entra_audit;
pub mod entra_delta;
pub mod okta_log;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::apply::Directory;
use crate::config::{ConfigError, RawConfig, optional};
use crate::event::Source;
use crate::idp::{CallPolicy, IdpError};
use crate::pipeline::{EventOutcome, Relay, parse_delivery};
use crate::source::{Auth0Api, OktaApi};
use crate::store::IdempotencyStore;
use crate::verified::Verified;

pub use checkpoint::{
    CHECKPOINT_TTL, CasCheckpoints, Checkpoint, CheckpointStore, FileCheckpoints, MemoryCheckpoints,
};

/// `RELAY_CATCH_UP_WINDOW` default: how far back a first run (no
/// checkpoint) reads. Modest on purpose — never the whole retention (Okta
/// 90 days; Auth0 1 day on Starter up to 30 on Enterprise, facts §1.3/§2.3).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `RELAY_CATCH_UP_OVERLAP` default: how far before the last event a run
/// restarts when its cursor is refused.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(5 * 60);
/// `RELAY_CATCH_UP_MAX_PAGES` default: pages one run reads at most (Okta
/// 1000 events a page, Auth0 100 records); the next run continues.
pub const DEFAULT_MAX_PAGES: u32 = 200;
/// The longest window accepted: Okta's retention (90 days).
const MAX_WINDOW: Duration = Duration::from_secs(90 * 24 * 3600);

/// The source a catch-up reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// Okta System Log → the `/okta` hook's events.
    Okta,
    /// Auth0 tenant logs → the `/auth0/logs` Log Streams' records.
    Auth0,
    /// Entra ID, which has no event log of its notifications: a run
    /// renews the Graph subscriptions, catches up by delta query and polls
    /// the audit log for MFA resets ([`entra`]).
    Entra,
}

impl LogSource {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "okta" => Some(Self::Okta),
            "auth0" => Some(Self::Auth0),
            "entra" => Some(Self::Entra),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Okta => "okta",
            Self::Auth0 => "auth0",
            Self::Entra => "entra",
        }
    }

    /// The hook route whose events this source repeats (and whose
    /// idempotency keys it shares).
    pub fn hook_source(self) -> Source {
        match self {
            Self::Okta => Source::Okta,
            Self::Auth0 => Source::Auth0Logs,
            Self::Entra => Source::Entra,
        }
    }
}

/// The event logs [`run`] reads page by page (Entra's catch-up is
/// [`entra::run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogKind {
    Okta,
    Auth0,
}

impl LogKind {
    fn source(self) -> LogSource {
        match self {
            Self::Okta => LogSource::Okta,
            Self::Auth0 => LogSource::Auth0,
        }
    }
}

/// IdP calls of a catch-up, a batch task: a System Log query may take up
/// to 30 s (facts §1.1), and a rate-limit reset (per minute on Okta and
/// Auth0; Graph's `Retry-After` is seconds to a minute) is waited for up
/// to a minute, five times.
pub(crate) const BATCH_POLICY: CallPolicy = CallPolicy {
    timeout: Duration::from_secs(35),
    rate_limit_retries: 5,
    max_rate_limit_wait: Duration::from_secs(61),
};

/// The log API of one source, on the reconcile's clients and credentials
/// (`OKTA_ORG_URL` + `OKTA_API_TOKEN`; `AUTH0_DOMAIN` + `AUTH0_CLIENT_ID` +
/// `AUTH0_CLIENT_SECRET`).
#[derive(Debug, Clone)]
pub enum LogApi {
    Okta(OktaApi),
    Auth0(Auth0Api),
}

impl LogApi {
    /// The client for `source`, with waits fit for a batch task
    /// ([`BATCH_POLICY`]).
    pub fn from_config(raw: &RawConfig, source: LogSource) -> Result<Self, ConfigError> {
        match source {
            LogSource::Okta => OktaApi::from_config(raw)?
                .map(|api| Self::Okta(api.with_policy(BATCH_POLICY)))
                .ok_or_else(|| {
                    ConfigError::new(
                        "OKTA_ORG_URL",
                        "is not set: catch-up reads the System Log with OKTA_ORG_URL + OKTA_API_TOKEN (scope okta.logs.read, or a read-only admin's token)",
                    )
                }),
            LogSource::Auth0 => Auth0Api::from_config(raw)?
                .map(|api| Self::Auth0(api.with_policy(BATCH_POLICY)))
                .ok_or_else(|| {
                    ConfigError::new(
                        "AUTH0_DOMAIN",
                        "is not set: catch-up reads the tenant logs with AUTH0_DOMAIN + AUTH0_CLIENT_ID + AUTH0_CLIENT_SECRET (scope read:logs)",
                    )
                }),
            LogSource::Entra => Err(ConfigError::new(
                "RELAY_CATCH_UP_SOURCE",
                "entra has no event log to read page by page: its catch-up is the delta query and the audit poll (`idp-duo-relay entra delta`, `entra audit`; the scheduled catch-up runs both)",
            )),
        }
    }

    pub fn source(&self) -> LogSource {
        self.kind().source()
    }

    fn kind(&self) -> LogKind {
        match self {
            Self::Okta(_) => LogKind::Okta,
            Self::Auth0(_) => LogKind::Auth0,
        }
    }

    /// HTTP requests the client has sent (429s and token fetches included).
    pub fn calls(&self) -> u64 {
        match self {
            Self::Okta(api) => api.calls(),
            Self::Auth0(api) => api.calls(),
        }
    }

    /// One page: its records (a JSON array) and the `next` link.
    async fn page(&self, target: &str) -> Result<(Vec<Value>, Option<String>), IdpError> {
        let (page, what) = match self {
            Self::Okta(api) => (api.raw_page(target, "logs.list").await?, "System Log page"),
            Self::Auth0(api) => (api.raw_page(target, "logs.list").await?, "tenant log page"),
        };
        // serde's message is left out: it can quote the body.
        let records: Vec<Value> = serde_json::from_slice(&page.body).map_err(|e| {
            IdpError::Decode(format!(
                "{what}: {:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Ok((records, page.next))
    }
}

/// The catch-up settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUpConfig {
    /// `RELAY_CATCH_UP_WINDOW`: a first run starts this long ago.
    pub window: Duration,
    /// `RELAY_CATCH_UP_OVERLAP`: a refused cursor restarts this long before
    /// the last event read.
    pub overlap: Duration,
    /// `RELAY_CATCH_UP_MAX_PAGES`: pages per run.
    pub max_pages: u32,
}

impl Default for CatchUpConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            overlap: DEFAULT_OVERLAP,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }
}

impl CatchUpConfig {
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(v) = optional(raw, "RELAY_CATCH_UP_WINDOW") {
            config.window = parse_duration(v)
                .filter(|d| !d.is_zero() && *d <= MAX_WINDOW)
                .ok_or_else(|| {
                    ConfigError::new(
                        "RELAY_CATCH_UP_WINDOW",
                        "must be a duration from 1s to 90d, like 24h, 90m or 2d",
                    )
                })?;
        }
        if let Some(v) = optional(raw, "RELAY_CATCH_UP_OVERLAP") {
            config.overlap = parse_duration(v)
                .filter(|d| *d <= Duration::from_secs(24 * 3600))
                .ok_or_else(|| {
                    ConfigError::new(
                        "RELAY_CATCH_UP_OVERLAP",
                        "must be a duration from 0s to 24h, like 5m",
                    )
                })?;
        }
        if let Some(v) = optional(raw, "RELAY_CATCH_UP_MAX_PAGES") {
            config.max_pages = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        "RELAY_CATCH_UP_MAX_PAGES",
                        "must be a number from 1 to 100000",
                    )
                })?;
        }
        Ok(config)
    }
}

/// `90s`, `30m`, `24h`, `7d`, or bare seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// What one run is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUpOptions {
    pub source: LogSource,
    /// `--since`: start here (ms since the epoch) instead of the checkpoint.
    pub since_ms: Option<i64>,
    /// `--dry-run`: the checkpoint is not saved (the caller also gives a
    /// relay that changes nothing in Duo).
    pub dry_run: bool,
}

impl CatchUpOptions {
    /// A scheduled run's options: the source from the task
    /// (`{"relay_task":"catch_up","source":"okta"}`, AWS) or
    /// `RELAY_CATCH_UP_SOURCE` (Azure, GCP), else the IdP whose API is
    /// configured (`OKTA_ORG_URL`, then `AUTH0_DOMAIN`, then
    /// `ENTRA_TENANT_ID`). A scheduled run
    /// starts from the stored checkpoint and applies (no `--since`, no dry
    /// run: the cloud entries have no dry-run directory).
    pub fn scheduled(raw: &RawConfig, task: Option<&Value>) -> Result<Self, ConfigError> {
        let source = match task.and_then(|t| t.get("source")) {
            Some(v) => v
                .as_str()
                .and_then(LogSource::parse)
                .ok_or_else(|| ConfigError::new("source", "must be okta, auth0 or entra"))?,
            None => match optional(raw, "RELAY_CATCH_UP_SOURCE") {
                Some(v) => LogSource::parse(v).ok_or_else(|| {
                    ConfigError::new("RELAY_CATCH_UP_SOURCE", "must be okta, auth0 or entra")
                })?,
                None if optional(raw, "OKTA_ORG_URL").is_some() => LogSource::Okta,
                None if optional(raw, "AUTH0_DOMAIN").is_some() => LogSource::Auth0,
                None if optional(raw, crate::source::entra::api::TENANT_ID).is_some() => {
                    LogSource::Entra
                }
                None => {
                    return Err(ConfigError::new(
                        "RELAY_CATCH_UP_SOURCE",
                        "is not set and none of OKTA_ORG_URL, AUTH0_DOMAIN, ENTRA_TENANT_ID is: no IdP to catch up from",
                    ));
                }
            },
        };
        Ok(Self {
            source,
            since_ms: None,
            dry_run: false,
        })
    }
}

/// One scheduled catch-up run (the cloud entries' task): options from
/// `task` and `raw` ([`CatchUpOptions::scheduled`]), settings and the log
/// API client from `raw`, then [`run`] through `relay` (the entry's own:
/// its store, group index and IdP lookups) from the checkpoint in
/// `checkpoints`. A configuration error reads and writes nothing (and
/// writes no summary line: the caller logs it and fails the invocation).
pub async fn run_scheduled<D, S, C>(
    relay: &Relay<D, S>,
    raw: &RawConfig,
    checkpoints: &C,
    task: Option<&Value>,
) -> Result<CatchUpSummary, ConfigError>
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    let options = CatchUpOptions::scheduled(raw, task)?;
    if options.source == LogSource::Entra {
        return entra::run(relay, raw, checkpoints).await;
    }
    let config = CatchUpConfig::from_config(raw)?;
    let api = LogApi::from_config(raw, options.source)?;
    Ok(run(relay, &api, checkpoints, &config, &options).await)
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Read to the end of the log; every record final.
    CaughtUp,
    /// Stopped at `RELAY_CATCH_UP_MAX_PAGES`; the next run continues.
    Behind,
    /// An event failed transiently (Duo 429/5xx, the store): the checkpoint
    /// stays before its page, and the next run retries it.
    EventFailed,
    /// Reading the log failed (credentials, rate limit beyond the waits,
    /// transport): the checkpoint stays where the last full page left it.
    IdpFailed,
    /// The checkpoint could not be read or saved.
    StoreFailed,
}

/// The summary of one run: the `catch_up` log line and `--json`'s output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatchUpSummary {
    pub source: LogSource,
    pub status: RunStatus,
    pub dry_run: bool,
    /// Log records read.
    pub records: u64,
    /// Events the hook had not delivered: applied, unchanged or skipped by
    /// the pipeline (a stale event, a user outside the filter…).
    pub new: u64,
    /// Events already applied (by the hook or an earlier run): 0 Duo calls.
    pub duplicates: u64,
    /// Events that failed (transiently: the run stopped; permanently:
    /// recorded, as the hook does, and passed).
    pub failed: u64,
    /// Records the relay does not act on (other event types, failed
    /// outcomes, malformed records).
    pub ignored: u64,
    /// Pages requested (the empty last page included).
    pub pages: u64,
    /// HTTP requests to the IdP's log API (429s, token fetches included).
    pub idp_calls: u64,
    /// Duo Admin API requests the events made.
    pub duo_calls: u64,
    /// Seconds since the log was last read to its end (0 when this run
    /// did, up to its own duration).
    pub checkpoint_lag_s: u64,
    /// A stored cursor was refused and the run restarted from the last
    /// event's time minus the overlap.
    pub cursor_fallback: bool,
    /// Why the run stopped early, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CatchUpSummary {
    fn new(source: LogSource, dry_run: bool) -> Self {
        Self {
            source,
            status: RunStatus::CaughtUp,
            dry_run,
            records: 0,
            new: 0,
            duplicates: 0,
            failed: 0,
            ignored: 0,
            pages: 0,
            idp_calls: 0,
            duo_calls: 0,
            checkpoint_lag_s: 0,
            cursor_fallback: false,
            error: None,
        }
    }

    /// The status as the summary line spells it.
    pub fn status_str(&self) -> &'static str {
        match self.status {
            RunStatus::CaughtUp => "caught_up",
            RunStatus::Behind => "behind",
            RunStatus::EventFailed => "event_failed",
            RunStatus::IdpFailed => "idp_failed",
            RunStatus::StoreFailed => "store_failed",
        }
    }

    /// One line for a scheduled run's answer (the invocation's result or
    /// error; the `catch_up` log line has every field).
    pub fn status_line(&self) -> String {
        let mut line = format!(
            "catch-up {} {}: {} records, {} new, {} duplicates, {} failed, checkpoint lag {} s",
            self.source.as_str(),
            self.status_str(),
            self.records,
            self.new,
            self.duplicates,
            self.failed,
            self.checkpoint_lag_s
        );
        if let Some(error) = &self.error {
            line.push_str("; stopped: ");
            line.push_str(error);
        }
        line
    }

    /// The one summary line of a run.
    pub fn log(&self) {
        use crate::log_line::catch_up as f;
        let status = self.status_str();
        let error = self.error.as_deref().unwrap_or("");
        // One field list for both levels: a run that ended well is info,
        // any other an error (what an alarm on the log counts).
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    {
                        { f::SOURCE } = self.source.as_str(),
                        { f::STATUS } = status,
                        { f::DRY_RUN } = self.dry_run,
                        { f::RECORDS } = self.records,
                        { f::NEW } = self.new,
                        { f::DUPLICATES } = self.duplicates,
                        { f::FAILED } = self.failed,
                        { f::IGNORED } = self.ignored,
                        { f::PAGES } = self.pages,
                        { f::IDP_CALLS } = self.idp_calls,
                        { f::DUO_CALLS } = self.duo_calls,
                        { f::CHECKPOINT_LAG_S } = self.checkpoint_lag_s,
                        { f::CURSOR_FALLBACK } = self.cursor_fallback,
                        { f::ERROR } = error,

                    },
                    "{}",
                    f::MESSAGE
                )
            };
        }
        if self.is_ok() {
            line!(info);
        } else {
            line!(error);
        }
    }

    /// The process exit code of a run (the CLI's and the GCP job's): 0
    /// read to the end (or to the page budget) with no failed event, 2 an
    /// event failed, 4 reading the log failed, 6 the checkpoint or store
    /// failed. (1 is bad configuration, before any run.)
    pub fn exit_code(&self) -> u8 {
        match self.status {
            RunStatus::IdpFailed => 4,
            RunStatus::StoreFailed => 6,
            RunStatus::EventFailed => 2,
            RunStatus::CaughtUp | RunStatus::Behind if self.failed > 0 => 2,
            RunStatus::CaughtUp | RunStatus::Behind => 0,
        }
    }

    /// Whether the run ended well: read to the end (or to its page budget)
    /// with no failed event.
    pub fn is_ok(&self) -> bool {
        matches!(self.status, RunStatus::CaughtUp | RunStatus::Behind) && self.failed == 0
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How a page ended.
enum PageEnd {
    /// Every record final; the newest event time among them.
    Final(Option<i64>),
    /// A transient failure: stop before this page.
    Stopped(String),
}

/// Where the next request goes.
enum Next {
    /// A request (path and query, or a link the IdP gave).
    Page {
        target: String,
        from_checkpoint: bool,
    },
    /// Auth0 without a `log_id`: find the oldest record since this time.
    Seed(i64),
}

/// One catch-up run of `api`'s log through `relay`, from the checkpoint in
/// `checkpoints`. Writes the `catch_up` summary line and answers the
/// summary; never panics on what the IdP answers.
pub async fn run<D, S, C>(
    relay: &Relay<D, S>,
    api: &LogApi,
    checkpoints: &C,
    config: &CatchUpConfig,
    options: &CatchUpOptions,
) -> CatchUpSummary
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    let kind = api.kind();
    let source = kind.source();
    let mut summary = CatchUpSummary::new(source, options.dry_run);
    let calls_before = api.calls();
    let started_ms = now_ms();
    let first_since = started_ms - millis(config.window);
    let mut checkpoint = match checkpoints.load(source.as_str()).await {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => {
            summary.status = RunStatus::StoreFailed;
            summary.error = Some(format!("loading the checkpoint: {e}"));
            summary.log();
            return summary;
        }
    };
    let fresh_since = |c: &Checkpoint| c.resume_since_ms.unwrap_or(first_since);
    let mut next = match (options.since_ms, kind, &checkpoint.cursor) {
        (Some(since), LogKind::Okta, _) => Next::Page {
            target: okta_log::polling_request(since),
            from_checkpoint: false,
        },
        (Some(since), LogKind::Auth0, _) => Next::Seed(since),
        (None, LogKind::Okta, Some(cursor)) => Next::Page {
            target: cursor.clone(),
            from_checkpoint: true,
        },
        (None, LogKind::Auth0, Some(log_id)) => Next::Page {
            target: auth0_log::from_request(log_id),
            from_checkpoint: true,
        },
        (None, LogKind::Okta, None) => Next::Page {
            target: okta_log::polling_request(fresh_since(&checkpoint)),
            from_checkpoint: false,
        },
        (None, LogKind::Auth0, None) => Next::Seed(fresh_since(&checkpoint)),
    };
    // Each iteration is one request; a refused cursor costs one.
    let mut requests = 0u32;
    let reached_end = loop {
        if requests >= config.max_pages {
            summary.status = RunStatus::Behind;
            break false;
        }
        requests += 1;
        let (target, from_checkpoint, seeding) = match &next {
            Next::Page {
                target,
                from_checkpoint,
            } => (target.clone(), *from_checkpoint, false),
            Next::Seed(since) => (auth0_log::seed_request(*since), false, true),
        };
        let (records, link) = match api.page(&target).await {
            Ok(page) => page,
            Err(e) if from_checkpoint && cursor_refused(kind, &e) => {
                let since = checkpoint
                    .last_event_ms
                    .or(checkpoint.caught_up_ms)
                    .map_or(first_since, |t| t - millis(config.overlap));
                tracing::warn!(
                    source = source.as_str(),
                    error = %e,
                    since = %crate::time::rfc3339_millis(since),
                    "the stored catch-up cursor was refused; restarting from the last event's time minus RELAY_CATCH_UP_OVERLAP"
                );
                summary.cursor_fallback = true;
                next = match kind {
                    LogKind::Okta => Next::Page {
                        target: okta_log::polling_request(since),
                        from_checkpoint: false,
                    },
                    LogKind::Auth0 => Next::Seed(since),
                };
                continue;
            }
            Err(e) => {
                summary.status = RunStatus::IdpFailed;
                summary.error = Some(format!("reading the {} log: {e}", source.as_str()));
                break false;
            }
        };
        summary.pages += 1;
        summary.records += records.len() as u64;
        if records.is_empty() {
            // The end of the log. Okta's `next` link of an empty polling
            // page is where new events will appear; Auth0's equals the
            // request, so the stored `log_id` stays.
            match kind {
                LogKind::Okta => checkpoint.cursor = Some(link.unwrap_or(target)),
                LogKind::Auth0 if seeding => {
                    // Nothing since the window's start: the next run
                    // searches again from a little before this run.
                    if checkpoint.cursor.is_none() || options.since_ms.is_some() {
                        checkpoint.resume_since_ms = Some(started_ms - millis(config.overlap));
                    }
                }
                LogKind::Auth0 => {}
            }
            break true;
        }
        let last_log_id = records
            .last()
            .and_then(auth0_log::log_id)
            .map(str::to_owned);
        match apply_page(relay, kind, records, &mut summary).await {
            PageEnd::Final(newest) => {
                if let Some(t) = newest {
                    checkpoint.last_event_ms =
                        Some(checkpoint.last_event_ms.map_or(t, |c| c.max(t)));
                }
            }
            PageEnd::Stopped(reason) => {
                summary.status = RunStatus::EventFailed;
                summary.error = Some(reason);
                break false;
            }
        }
        next = match kind {
            LogKind::Okta => {
                let Some(link) = link else {
                    // Not a polling answer (Okta always links the next
                    // page of one): read this page again next time.
                    checkpoint.cursor = Some(target);
                    break true;
                };
                checkpoint.cursor = Some(link.clone());
                Next::Page {
                    target: link,
                    from_checkpoint: false,
                }
            }
            LogKind::Auth0 => {
                let Some(log_id) = last_log_id else {
                    summary.status = RunStatus::IdpFailed;
                    summary.error = Some("a tenant log record has no log_id".into());
                    break false;
                };
                checkpoint.cursor = Some(log_id.clone());
                checkpoint.resume_since_ms = None;
                let target = match link {
                    Some(link) if !seeding => link,
                    _ => auth0_log::from_request(&log_id),
                };
                Next::Page {
                    target,
                    from_checkpoint: false,
                }
            }
        };
        if !options.dry_run
            && let Err(e) = checkpoints.save(source.as_str(), &checkpoint).await
        {
            summary.status = RunStatus::StoreFailed;
            summary.error = Some(format!("saving the checkpoint: {e}"));
            break false;
        }
    };
    if reached_end {
        checkpoint.caught_up_ms = Some(started_ms);
        if !options.dry_run
            && let Err(e) = checkpoints.save(source.as_str(), &checkpoint).await
        {
            summary.status = RunStatus::StoreFailed;
            summary.error = Some(format!("saving the checkpoint: {e}"));
        }
    }
    let since = checkpoint
        .caught_up_ms
        .or(checkpoint.last_event_ms)
        .unwrap_or(first_since);
    summary.checkpoint_lag_s = u64::try_from((now_ms() - since).max(0) / 1000).unwrap_or(0);
    summary.idp_calls = api.calls() - calls_before;
    summary.log();
    summary
}

fn cursor_refused(kind: LogKind, e: &IdpError) -> bool {
    match kind {
        LogKind::Okta => okta_log::cursor_refused(e),
        LogKind::Auth0 => auth0_log::cursor_refused(e),
    }
}

/// Applies one page's records in event-time order (stable: the log's own
/// order among equal times), each as a one-record delivery of the hook's
/// source, so the hook's parser gives it the hook's idempotency key.
async fn apply_page<D, S>(
    relay: &Relay<D, S>,
    kind: LogKind,
    mut records: Vec<Value>,
    summary: &mut CatchUpSummary,
) -> PageEnd
where
    D: Directory,
    S: IdempotencyStore,
{
    let time = |r: &Value| match kind {
        LogKind::Okta => okta_log::event_time_ms(r),
        LogKind::Auth0 => auth0_log::event_time_ms(r),
    };
    records.sort_by_key(|r| time(r).unwrap_or(i64::MIN));
    let mut newest: Option<i64> = None;
    for record in &records {
        let body = match kind {
            LogKind::Okta => okta_log::envelope(record),
            LogKind::Auth0 => record.to_string().into_bytes(),
        };
        // The record came from the IdP's API over TLS with the relay's own
        // credential: the operator's authority, as for a replayed file.
        let delivery = Verified::trusted_local_file(kind.source().hook_source(), body);
        let parsed = match parse_delivery(&delivery) {
            Ok(parsed) => parsed,
            Err(_) => {
                summary.ignored += 1;
                continue;
            }
        };
        summary.ignored += parsed.skipped.len() as u64;
        for event in &parsed.events {
            let report = relay.apply_event(event).await;
            summary.duo_calls += report.duo_calls;
            match &report.outcome {
                EventOutcome::Duplicate => summary.duplicates += 1,
                EventOutcome::Applied(_)
                | EventOutcome::Unchanged(_)
                | EventOutcome::Skipped(_) => {
                    summary.new += 1;
                }
                EventOutcome::FailedPermanent(_) => summary.failed += 1,
                EventOutcome::FailedTransient(reason) => {
                    summary.failed += 1;
                    return PageEnd::Stopped(format!(
                        "event {} failed transiently ({reason}); the checkpoint stays before its page",
                        report.event_id
                    ));
                }
            }
        }
        if let Some(t) = time(record) {
            newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    }
    PageEnd::Final(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("2w"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("-1h"), None);
    }

    #[test]
    fn scheduled_options_name_the_source() {
        let raw = crate::config::from_pairs(&[("OKTA_ORG_URL", "https://acme.okta.com")]);
        let task = serde_json::json!({"relay_task": "catch_up", "source": "auth0"});
        assert_eq!(
            CatchUpOptions::scheduled(&raw, Some(&task)).unwrap().source,
            LogSource::Auth0
        );
        assert_eq!(
            CatchUpOptions::scheduled(&raw, None).unwrap(),
            CatchUpOptions {
                source: LogSource::Okta,
                since_ms: None,
                dry_run: false
            }
        );
        let raw = crate::config::from_pairs(&[
            ("AUTH0_DOMAIN", "acme.us.auth0.com"),
            ("RELAY_CATCH_UP_SOURCE", "okta"),
        ]);
        assert_eq!(
            CatchUpOptions::scheduled(&raw, None).unwrap().source,
            LogSource::Okta
        );
        // Entra: named, or the only IdP whose API is configured.
        let task = serde_json::json!({"relay_task": "catch_up", "source": "entra"});
        assert_eq!(
            CatchUpOptions::scheduled(&raw, Some(&task)).unwrap().source,
            LogSource::Entra
        );
        let entra = crate::config::from_pairs(&[("ENTRA_TENANT_ID", "contoso.onmicrosoft.com")]);
        assert_eq!(
            CatchUpOptions::scheduled(&entra, None).unwrap().source,
            LogSource::Entra
        );
        for (raw, task, name) in [
            (vec![], None, "RELAY_CATCH_UP_SOURCE"),
            (
                vec![("RELAY_CATCH_UP_SOURCE", "azure")],
                None,
                "RELAY_CATCH_UP_SOURCE",
            ),
            (vec![], Some(serde_json::json!({"source": 3})), "source"),
        ] {
            let err = CatchUpOptions::scheduled(&crate::config::from_pairs(&raw), task.as_ref())
                .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn config_is_checked() {
        let raw = crate::config::from_pairs(&[]);
        assert_eq!(
            CatchUpConfig::from_config(&raw).unwrap(),
            CatchUpConfig::default()
        );
        let raw = crate::config::from_pairs(&[
            ("RELAY_CATCH_UP_WINDOW", "2h"),
            ("RELAY_CATCH_UP_OVERLAP", "0"),
            ("RELAY_CATCH_UP_MAX_PAGES", "3"),
        ]);
        assert_eq!(
            CatchUpConfig::from_config(&raw).unwrap(),
            CatchUpConfig {
                window: Duration::from_secs(7200),
                overlap: Duration::ZERO,
                max_pages: 3
            }
        );
        for (name, value) in [
            ("RELAY_CATCH_UP_WINDOW", "91d"),
            ("RELAY_CATCH_UP_WINDOW", "0"),
            ("RELAY_CATCH_UP_OVERLAP", "2d"),
            ("RELAY_CATCH_UP_MAX_PAGES", "0"),
        ] {
            let err = CatchUpConfig::from_config(&crate::config::from_pairs(&[(name, value)]))
                .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
