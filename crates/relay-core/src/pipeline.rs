//! The relay, end to end and HTTP-agnostic: headers and body in, status and
//! body out. Two stages, so a queue can later sit between them:
//!
//! 1. **accept** — verify, parse, and give each event its idempotency key;
//! 2. **apply** — plan and execute against Duo, record the outcome, and write
//!    exactly one summary line per event.
//!
//! In `sync` mode both run inside the request. In `queue` mode
//! ([`Relay::with_queue`]) the request only accepts (verify, parse, enqueue
//! durably, answer 200) and a worker calls [`Relay::process`] per message.
//!
//! Answers to the IdP are an [`Answer`] (refused, not a delivery, done,
//! retry later, deferred); relay-server alone turns one into an HTTP status
//! and body. The idempotency store makes sure the events that did apply are
//! not applied twice when the IdP retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;

use crate::apply::{ApplyError, Directory, OpOutcome};
use crate::config::{ConfigError, RawConfig};
use crate::event::{Change, GroupRef, IdpEvent, Lifecycle, Parsed, Source};
use crate::idp::IdpError;
use crate::operation::{Operation, OperationKind};
use crate::order::{Role, aspects, parse_time_ms};
use crate::parse_util::ParseError;
use crate::plan::{PlanRules, Planned, plan_event};
use crate::queue::disk::DiskQueue;
use crate::queue::{DeadLetter, Disposition, EventQueue, QueuePolicy, QueuedEvent};
pub use crate::report::{EventOutcome, EventReport, subject};
use crate::report::{log_report, skipped_report};
pub use crate::source::IdpLookups;
use crate::store::{Claim, IdempotencyStore};
use crate::verified::Verified;
use crate::verify::{Authenticated, InboundAuth};

/// A request the relay answers, from the registry ([`crate::source::SOURCES`]):
/// each source's path, `POST` for a delivery and, for a source that has
/// one, `GET` for its verification challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET` on the source's path: the one-time verification challenge
    /// (`GET /okta`).
    Verification(Source),
    /// `POST` on the source's path: a delivery (`POST /okta`, `/auth0`,
    /// `/auth0/logs`).
    Delivery(Source),
}

impl Route {
    pub fn source(self) -> Source {
        match self {
            Self::Verification(source) | Self::Delivery(source) => source,
        }
    }

    /// The route of a request on the plain paths, `None` for any other
    /// method or path.
    pub fn of(method: &http::Method, path: &str) -> Option<Self> {
        let spec = crate::source::SOURCES.iter().find(|s| s.path == path)?;
        if method == http::Method::POST {
            Some(Self::Delivery(spec.source))
        } else if method == http::Method::GET && spec.verification_get {
            Some(Self::Verification(spec.source))
        } else {
            None
        }
    }
}

/// What the relay answers a request, before it is HTTP. relay-server maps
/// it to a status and a body (`relay_server::respond`): the one place a
/// delivery's status is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Every event is applied, skipped or failed permanently (retrying
    /// cannot help, so the IdP must not retry forever), or the delivery is
    /// queued durably. (200)
    Done,
    /// The verification challenge to echo. (200 `{"verification": …}`)
    Challenge(String),
    /// A subscription validation token to echo as it is (Microsoft Graph's
    /// `validationToken`). (200 `text/plain`)
    Validation(String),
    /// Bad credentials or signature; the reason is logged. (401)
    Refused,
    /// A verification `GET` without a usable challenge. (400)
    NoChallenge,
    /// The verified body is not a delivery of its source: the parser's
    /// reason, which names fields, never values. (400 `{"error": …}`)
    NotADelivery(String),
    /// An event failed transiently (429/5xx/timeouts from Duo) or the queue
    /// is unavailable: nothing durable holds it, so the IdP's retry is what
    /// saves it; what did apply is remembered and skipped then. (503)
    RetryLater,
    /// The sync time budget ran out after `processed` events; `deferred`
    /// were not started. The IdP redelivers. (503 with a JSON body saying so)
    Deferred {
        processed: usize,
        deferred: usize,
        budget_ms: u64,
    },
}

/// Longest validation token echoed (Graph's are about 100 characters).
const MAX_VALIDATION_TOKEN_BYTES: usize = 1024;

/// The value of `param` in `query`, form-decoded (`%XX` and `+`):
/// `None` when the parameter is absent (not a handshake), `Some(None)` when
/// it is there but empty, over-long or not text without control characters.
fn validation_token(query: &str, param: &str) -> Option<Option<String>> {
    let url = reqwest::Url::parse(&format!("http://h/?{query}")).ok()?;
    let (_, value) = url.query_pairs().find(|(name, _)| name == param)?;
    let ok = !value.trim().is_empty()
        && value.len() <= MAX_VALIDATION_TOKEN_BYTES
        && !value.chars().any(char::is_control);
    Some(ok.then(|| value.into_owned()))
}

/// Parses a verified delivery with the parser of its source.
pub fn parse_delivery(delivery: &Verified) -> Result<Parsed, ParseError> {
    crate::source::parse(delivery)
}

/// Builds the relay every entry point runs: inbound auth, rules, the Duo
/// directory and the IdP lookups from configuration, with the entry's own
/// idempotency store. `retry`/`timeout` bound the Duo calls: a webhook
/// answered in the request cannot sleep for a minute.
pub fn duo_relay<S: IdempotencyStore>(
    raw: &RawConfig,
    store: S,
    retry: duo_admin::RetryPolicy,
    timeout: std::time::Duration,
) -> Result<Relay<crate::apply::DuoDirectory, S>, ConfigError> {
    let auth = InboundAuth::from_config(raw)?;
    let rules = PlanRules::from_config(raw)?;
    let mut duo = crate::config::duo_config(raw, retry)?;
    duo.timeout = timeout;
    let directory = crate::apply::DuoDirectory::from_rules(crate::config::duo_client(duo)?, &rules);
    let lookups = IdpLookups::from_config(raw)?;
    if let Some(scope) = &rules.scope {
        // Who is in scope is the user's groups now: the IdP's API.
        for spec in crate::source::IDPS {
            if crate::config::optional(raw, spec.secret_variable).is_some()
                && !lookups.configured(spec.kind)
            {
                return Err(ConfigError::new(
                    "SCOPE_GROUPS",
                    format!(
                        "({}) needs the {} API to tell who is in scope, since {} is set: set {}",
                        scope.describe(),
                        spec.kind,
                        spec.secret_variable,
                        spec.attributes.api_variables
                    ),
                ));
            }
        }
    }
    let budget = sync_budget(raw)?;
    Ok(Relay::new(auth, rules, directory, store)
        .with_lookups(lookups)
        .with_sync_budget(budget))
}

/// The Duo retry policy for answering a webhook inside the request: Okta
/// gives up after 3 s, so retries get 1.5 s in all and each attempt 2 s.
pub fn sync_retry() -> (duo_admin::RetryPolicy, std::time::Duration) {
    (
        duo_admin::RetryPolicy::short(std::time::Duration::from_millis(1500)),
        std::time::Duration::from_secs(2),
    )
}

impl<S: IdempotencyStore> Relay<crate::apply::DuoDirectory, S> {
    /// Keeps the Duo group index in `store` (the platform's state store), so
    /// a restart or a cold start loads it instead of listing every Duo group.
    #[must_use]
    pub fn with_group_index(mut self, store: Arc<dyn crate::group_index::GroupIndexStore>) -> Self {
        self.directory = self.directory.with_group_index(store);
        self
    }
}

/// How long a sync-mode request keeps starting events of its delivery
/// (`RELAY_SYNC_BUDGET_MS`): Okta gives up after 3 s, and the event in
/// progress at the deadline still finishes.
pub const DEFAULT_SYNC_BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);

/// `RELAY_SYNC_BUDGET_MS`: 100 to 600000 ms, or `0` for no limit (the
/// request applies every event of its delivery, however long it takes).
pub fn sync_budget(raw: &RawConfig) -> Result<Option<std::time::Duration>, ConfigError> {
    let Some(value) = crate::config::optional(raw, "RELAY_SYNC_BUDGET_MS") else {
        return Ok(Some(DEFAULT_SYNC_BUDGET));
    };
    match value.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(ms @ 100..=600_000) => Ok(Some(std::time::Duration::from_millis(ms))),
        _ => Err(ConfigError::new(
            "RELAY_SYNC_BUDGET_MS",
            "must be a number of milliseconds from 100 to 600000, or 0 for no limit",
        )),
    }
}

/// The relay: inbound auth, rules, where operations go and what was applied.
#[derive(Debug)]
pub struct Relay<D, S> {
    auth: InboundAuth,
    rules: PlanRules,
    directory: D,
    store: S,
    lookups: IdpLookups,
    queue: Option<Arc<dyn EventQueue>>,
    logins: LoginLocks,
    sync_budget: Option<std::time::Duration>,
    catch_up: CatchUpSlot<D, S>,
}

/// A catch-up a lifecycle event asks for (Entra's `missed`: "notifications
/// were dropped"), run through the relay with what only whoever builds it
/// has — the catch-up checkpoint store, which sits above this module
/// (`crate::catch_up::entra_delta::DeltaCatchUp` implements it).
pub trait CatchUpHook<D, S>: Send + Sync {
    /// Runs the catch-up; `Ok`: what it did; `Err((transient, why))`.
    fn run<'a>(&'a self, relay: &'a Relay<D, S>) -> CatchUpFuture<'a>;
}

/// What [`CatchUpHook::run`] answers.
pub type CatchUpFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, (bool, String)>> + Send + 'a>,
>;

/// The relay's catch-up hook, if any.
struct CatchUpSlot<D, S>(Option<Arc<dyn CatchUpHook<D, S>>>);

impl<D, S> std::fmt::Debug for CatchUpSlot<D, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(CatchUpHook)"
        } else {
            "None"
        })
    }
}

/// One lock per login while an event about it applies, so two events about
/// one login — a deleted identity's and its re-created successor's, whose
/// queue ordering keys differ (`crate::order`) — never act on Duo at the
/// same time in this process: an account without an IdP id cannot be
/// adopted by one while the other deletes it. Entries live only while held
/// or awaited.
#[derive(Debug, Default)]
struct LoginLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// A held login lock; dropping it releases the login (and forgets it when
/// nobody else holds or awaits it).
struct LoginGuard<'a> {
    locks: &'a LoginLocks,
    key: String,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl LoginLocks {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the locks of `keys`, in sorted order (so two events never wait
    /// for each other).
    async fn lock(&self, mut keys: Vec<String>) -> Vec<LoginGuard<'_>> {
        keys.sort();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
            let mutex = self.table().entry(key.clone()).or_default().clone();
            guards.push(LoginGuard {
                locks: self,
                key,
                _held: mutex.lock_owned().await,
            });
        }
        guards
    }
}

impl Drop for LoginGuard<'_> {
    fn drop(&mut self) {
        let mut table = self.locks.table();
        // The table's handle and the one inside this guard: nobody else
        // holds or awaits this login (new waiters clone under this lock).
        if table
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            table.remove(&self.key);
        }
    }
}

/// The logins an event is about (lower-cased, per IdP): its user's, a new
/// login it carries, and an earlier one it renames.
fn event_logins(event: &IdpEvent) -> Vec<String> {
    let mut logins: Vec<&str> = Vec::new();
    match &event.change {
        Change::UserUpserted { user, profile, .. } => {
            logins.extend(user.login.as_deref());
            logins.extend(profile.login.as_deref());
        }
        Change::UserProfileChanged {
            user,
            profile,
            previous_login,
        } => {
            logins.extend(user.login.as_deref());
            logins.extend(profile.as_ref().and_then(|p| p.login.as_deref()));
            logins.extend(previous_login.as_deref());
        }
        Change::UserStateChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MembershipAdded { user, .. }
        | Change::MembershipRemoved { user, .. }
        | Change::MfaReset { user, .. } => logins.extend(user.login.as_deref()),
        Change::GroupCreated { .. }
        | Change::GroupRenamed { .. }
        | Change::GroupDeleted { .. }
        | Change::SubscriptionLifecycle { .. } => {}
    }
    logins
        .into_iter()
        .map(|l| crate::order::login_key(event.source, l))
        .collect()
}

impl<D: Directory, S: IdempotencyStore> Relay<D, S> {
    pub fn new(auth: InboundAuth, rules: PlanRules, directory: D, store: S) -> Self {
        Self {
            auth,
            rules,
            directory,
            store,
            lookups: IdpLookups::default(),
            queue: None,
            logins: LoginLocks::default(),
            sync_budget: Some(DEFAULT_SYNC_BUDGET),
            catch_up: CatchUpSlot(None),
        }
    }

    /// What a `missed` lifecycle notification runs (a delta catch-up with
    /// the deployment's checkpoint store). Without one, such a
    /// notification is an error line naming the command to run.
    #[must_use]
    pub fn with_catch_up(mut self, hook: Arc<dyn CatchUpHook<D, S>>) -> Self {
        self.catch_up = CatchUpSlot(Some(hook));
        self
    }

    /// Sync mode: the time after which a request starts no further event
    /// of its delivery (`None`: no limit). Default [`DEFAULT_SYNC_BUDGET`].
    #[must_use]
    pub fn with_sync_budget(mut self, budget: Option<std::time::Duration>) -> Self {
        self.sync_budget = budget;
        self
    }

    /// Queue mode: deliveries are accepted into `queue` and answered at
    /// once; a worker applies them with [`Relay::process`].
    #[must_use]
    pub fn with_queue(mut self, queue: Arc<dyn EventQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// `"queue"` or `"sync"` (for start-up logs).
    pub fn mode(&self) -> &'static str {
        if self.queue.is_some() {
            "queue"
        } else {
            "sync"
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Lets the relay fetch what events do not carry from the IdP.
    #[must_use]
    pub fn with_lookups(mut self, lookups: IdpLookups) -> Self {
        self.lookups = lookups;
        self
    }

    /// The IdP APIs the relay may ask (for start-up logs).
    pub fn lookups(&self) -> &IdpLookups {
        &self.lookups
    }

    /// Whether a source has a shared secret configured (for start-up logs).
    pub fn auth(&self) -> &InboundAuth {
        &self.auth
    }

    /// The planning rules (`GROUP_FILTER`, `DEPROVISION_ACTION`, scope,
    /// mapping): a catch-up that reconciles uses the relay's own.
    pub fn rules(&self) -> &PlanRules {
        &self.rules
    }

    pub fn directory(&self) -> &D {
        &self.directory
    }

    /// Handles one request on one route. Never panics on input. The body
    /// is already read; the HTTP server instead calls
    /// [`Relay::authenticate`] before reading it and
    /// [`Relay::handle_authenticated`] after.
    pub async fn handle(&self, route: Route, headers: &HeaderMap, body: Bytes) -> Answer {
        let started = Instant::now();
        if let Route::Verification(source) = route {
            return match self.auth.verify_challenge(source, headers) {
                Ok(challenge) => {
                    tracing::info!(source = %source, "okta verification challenge answered");
                    Answer::Challenge(challenge)
                }
                Err(e) => {
                    tracing::warn!(source = %source, verify_failure = e.reason(), "okta verification challenge refused");
                    if e.is_bad_request() {
                        Answer::NoChallenge
                    } else {
                        Answer::Refused
                    }
                }
            };
        }
        match self.authenticate(route, headers) {
            Ok(authenticated) => {
                self.handle_authenticated(authenticated, body, started)
                    .await
            }
            Err(Refused(())) => Answer::Refused,
        }
    }

    /// A subscription validation handshake on a delivery route: `Some`
    /// when the source registers a validation query parameter
    /// ([`crate::source::SourceSpec::validation_query`]) and the request's
    /// query carries it. The handshake has no secret (Graph sends none), so
    /// it is answered only for a source whose secret is configured: a
    /// relay that would refuse every notification does not let a
    /// subscription be created. The token is echoed URL-decoded (Graph
    /// requires the decoded value), at most 1024 bytes of visible text
    /// (a real one is about 100); anything else is a 400.
    pub fn validation(&self, route: Route, query: Option<&str>) -> Option<Answer> {
        let Route::Delivery(source) = route else {
            return None;
        };
        let param = crate::source::spec(source).validation_query?;
        let token = validation_token(query?, param)?;
        if !self.auth.is_configured(source) {
            tracing::warn!(source = %source, verify_failure = "not_configured", "subscription validation refused: no secret is configured for this source");
            return Some(Answer::Refused);
        }
        match token {
            Some(token) => {
                tracing::info!(source = %source, "subscription validation handshake answered");
                Some(Answer::Validation(token))
            }
            None => {
                tracing::warn!(source = %source, "subscription validation refused: empty, over-long or non-text token");
                Some(Answer::NoChallenge)
            }
        }
    }

    /// Checks a delivery's headers — the source's shared secret and, when
    /// signing is required, the signature headers — before its body is
    /// read, so an unauthenticated client never gets its body read. A
    /// refusal is logged; answer it with [`Answer::Refused`] (`Refused::answer`).
    pub fn authenticate(
        &self,
        route: Route,
        headers: &HeaderMap,
    ) -> Result<Authenticated, Refused> {
        let source = route.source();
        self.auth
            .authenticate_headers(source, headers, SystemTime::now())
            .map_err(|e| {
                log_refusal(source, &e);
                Refused(())
            })
    }

    /// Handles a delivery whose headers passed [`Relay::authenticate`], now
    /// that its body is read: the signature over the body (when required),
    /// then parse and apply (sync mode, within the sync budget counted from
    /// `started`) or enqueue (queue mode).
    pub async fn handle_authenticated(
        &self,
        authenticated: Authenticated,
        body: Bytes,
        started: Instant,
    ) -> Answer {
        let source = authenticated.source();
        let delivery = match self.auth.verify_body(authenticated, body) {
            Ok(delivery) => delivery,
            Err(e) => return refused(source, &e),
        };
        if let Some(queue) = &self.queue {
            return self.accept_into(queue.as_ref(), &delivery).await;
        }
        self.apply_in_request(&delivery, started).await
    }

    /// Sync mode: parse and apply each event inside the request. Okta gives
    /// up after 3 s, so no event is *started* once the sync budget
    /// ([`Relay::with_sync_budget`]) is spent (the one in progress
    /// finishes, and at least one event not applied before is tried per
    /// delivery so every redelivery makes progress): the rest are logged as deferred and the
    /// delivery is answered 503 with a body that says why. The IdP
    /// redelivers; the events already applied are remembered and skipped as
    /// duplicates, so the redelivery starts where this one stopped.
    async fn apply_in_request(&self, delivery: &Verified, started: Instant) -> Answer {
        let source = delivery.source();
        let parsed = match parse_delivery(delivery) {
            Ok(parsed) => parsed,
            Err(e) => return not_a_delivery(source, &e),
        };
        for skipped in &parsed.skipped {
            log_report(&skipped_report(source, skipped));
        }
        let mut transient = false;
        // An event not already applied was tried: a redelivery whose first
        // events are duplicates (skipped without a Duo call) still applies
        // one new event before the budget can stop it.
        let mut progressed = false;
        for (done, event) in parsed.events.iter().enumerate() {
            if let Some(budget) = self.sync_budget
                && progressed
                && started.elapsed() >= budget
            {
                return self.defer_rest(source, &parsed.events[done..], done, budget, started);
            }
            let report = self.apply_event(event).await;
            transient |= matches!(report.outcome, EventOutcome::FailedTransient(_));
            progressed |= !matches!(report.outcome, EventOutcome::Duplicate);
        }
        if transient {
            // Ask the IdP to retry; what did apply is remembered and skipped.
            Answer::RetryLater
        } else {
            Answer::Done
        }
    }

    /// The sync budget ran out with `rest` not started: one summary line
    /// each (`failed_transient`, detail `deferred: …`), one line for the
    /// delivery, and a 503 whose body says why.
    fn defer_rest(
        &self,
        source: Source,
        rest: &[IdpEvent],
        done: usize,
        budget: std::time::Duration,
        started: Instant,
    ) -> Answer {
        let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        let detail = format!(
            "deferred: the sync time budget ({budget_ms} ms, RELAY_SYNC_BUDGET_MS) was spent before this event started; answered 503 so the IdP redelivers"
        );
        for event in rest {
            log_report(&EventReport {
                event_id: event.id.to_string(),
                source,
                event_type: event.event_type.clone(),
                subject: subject(&event.change),
                operations: Vec::new(),
                outcome: EventOutcome::FailedTransient(detail.clone()),
                duo_calls: 0,
                duo_throttled: 0,
                duration_ms: 0,
            });
        }
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(
            source = %source,
            events = done + rest.len(),
            processed = done,
            deferred = rest.len(),
            budget_ms,
            elapsed_ms,
            "sync time budget spent: answering 503 so the IdP redelivers; the processed events are remembered and skipped then (RELAY_MODE=queue answers at once)"
        );
        Answer::Deferred {
            processed: done,
            deferred: rest.len(),
            budget_ms,
        }
    }

    /// Queue mode's accept stage: parse, log what is skipped, enqueue the
    /// rest durably, answer 200 (or 503 when the queue is unavailable: nothing
    /// holds the events, so the IdP must retry).
    async fn accept_into(&self, queue: &dyn EventQueue, delivery: &Verified) -> Answer {
        let source = delivery.source();
        let parsed = match parse_delivery(delivery) {
            Ok(parsed) => parsed,
            Err(e) => return not_a_delivery(source, &e),
        };
        for skipped in &parsed.skipped {
            log_report(&skipped_report(source, skipped));
        }
        if parsed.events.is_empty() {
            return Answer::Done;
        }
        let messages: Vec<QueuedEvent> = parsed.events.into_iter().map(QueuedEvent::new).collect();
        match queue.enqueue(&messages).await {
            Ok(()) => {
                let ids: Vec<&str> = messages.iter().map(|m| m.event.id.as_str()).collect();
                tracing::info!(source = %source, queued = messages.len(), event_ids = %ids.join(","), "delivery accepted into the queue");
                Answer::Done
            }
            Err(e) => {
                tracing::error!(source = %source, error = %e, events = messages.len(), "could not enqueue the delivery; answering 503 so the IdP retries");
                Answer::RetryLater
            }
        }
    }

    /// Queue mode's apply stage, for one message body on its `attempt`-th
    /// delivery (from 1): applies the event (exactly once, in event-time
    /// order per subject) and says what the queue should do with the
    /// message. A poison message (unreadable, or a permanent failure) and
    /// one out of attempts become dead letters, logged with their reason;
    /// their claim is released so `dlq replay` can apply them later.
    pub async fn process(
        &self,
        body: &str,
        attempt: u32,
        policy: &QueuePolicy,
    ) -> (Option<EventReport>, Disposition) {
        let message = match QueuedEvent::from_json(body) {
            Ok(message) => message,
            Err(reason) => {
                DeadLetter::new(body, &reason, attempt).log("-");
                return (None, Disposition::DeadLetter { reason });
            }
        };
        let report = self
            .apply_event_with(&message.event, ApplyMode::Queue)
            .await;
        let disposition = crate::queue::decide(&report, attempt, policy);
        match &disposition {
            Disposition::DeadLetter { reason } => {
                DeadLetter::new(body, reason, attempt).log(message.event.source.as_str());
            }
            Disposition::Retry { reason } => {
                tracing::info!(event_id = %message.event.id, attempt, max_attempts = policy.max_attempts, reason = %reason, "will retry");
            }
            Disposition::Done => {}
        }
        (Some(report), disposition)
    }

    /// [`Relay::process`] for a worker whose platform redelivers (the
    /// Azure queue trigger, a Pub/Sub push): a dead letter goes to `sink`
    /// before the message is settled. `message_id` names the message in
    /// log lines.
    pub async fn settle<K: crate::queue::DeadLetterSink>(
        &self,
        body: &str,
        attempt: u32,
        policy: &QueuePolicy,
        sink: &K,
        message_id: &str,
    ) -> crate::queue::Settlement {
        use crate::queue::Settlement;
        match self.process(body, attempt, policy).await.1 {
            Disposition::Done => Settlement::Settled,
            // The summary line and the "will retry" line are written.
            Disposition::Retry { .. } => Settlement::Redeliver,
            Disposition::DeadLetter { reason } => {
                let letter = DeadLetter::new(body, &reason, attempt);
                crate::queue::dead_letter_to(sink, &letter, message_id).await
            }
        }
    }

    /// Parses a verified delivery and applies each event, in order.
    pub async fn accept_and_apply(
        &self,
        delivery: &Verified,
    ) -> Result<Vec<EventReport>, ParseError> {
        let parsed = parse_delivery(delivery)?;
        let mut reports = Vec::with_capacity(parsed.events.len() + parsed.skipped.len());
        for skipped in &parsed.skipped {
            let report = skipped_report(delivery.source(), skipped);
            log_report(&report);
            reports.push(report);
        }
        for event in &parsed.events {
            reports.push(self.apply_event(event).await);
        }
        Ok(reports)
    }

    /// Applies one event exactly once, and writes its summary line.
    pub async fn apply_event(&self, event: &IdpEvent) -> EventReport {
        self.apply_event_with(event, ApplyMode::Sync).await
    }

    /// `mode` decides what a permanent failure and a claim held by another
    /// delivery become (see [`ApplyMode`]).
    ///
    /// Runs in an `event` span (`event_id`, `source`, `event_type`), so
    /// every line written while the event is applied carries them.
    async fn apply_event_with(&self, event: &IdpEvent, mode: ApplyMode) -> EventReport {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "event",
            event_id = %event.id,
            source = %event.source,
            event_type = %event.event_type
        );
        self.apply_event_in_span(event, mode).instrument(span).await
    }

    async fn apply_event_in_span(&self, event: &IdpEvent, mode: ApplyMode) -> EventReport {
        let started = Instant::now();
        let held = self.logins.lock(event_logins(event)).await;
        let (result, calls) = duo_admin::count_task_calls(self.apply_inner(event, mode)).await;
        drop(held);
        let (operations, outcome) = result;
        let report = EventReport {
            event_id: event.id.to_string(),
            source: event.source,
            event_type: event.event_type.clone(),
            subject: subject(&event.change),
            operations,
            outcome,
            duo_calls: calls.requests,
            duo_throttled: calls.rate_limited,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        log_report(&report);
        report
    }

    async fn apply_inner(
        &self,
        event: &IdpEvent,
        mode: ApplyMode,
    ) -> (Vec<OperationKind>, EventOutcome) {
        match self.store.claim(&event.id).await {
            Ok(Claim::New) => {}
            Ok(Claim::Done) => return (Vec::new(), EventOutcome::Duplicate),
            // Sync mode: the other delivery answers the IdP (503 if it
            // fails, and the IdP retries it). Queue mode: acking this message
            // would lose the event if the other attempt fails or died, so it
            // waits for a later attempt (the claim expires after
            // CLAIM_TIMEOUT).
            Ok(Claim::InProgress) if mode == ApplyMode::Sync => {
                return (Vec::new(), EventOutcome::Duplicate);
            }
            Ok(Claim::InProgress) => {
                return (
                    Vec::new(),
                    EventOutcome::FailedTransient(
                        "being applied by another delivery of the same event; will retry".into(),
                    ),
                );
            }
            Err(e) => {
                return (
                    Vec::new(),
                    EventOutcome::FailedTransient(format!("idempotency store: {e}")),
                );
            }
        }
        let ToApply {
            event,
            occurred_at_ms,
            advance,
        } = match self.order(event).await {
            Ok(Ordered::Apply(to_apply)) => *to_apply,
            Ok(Ordered::Stale(reason)) => {
                self.finish(event, Finish::Done).await;
                return (Vec::new(), EventOutcome::Skipped(reason));
            }
            Err(e) => {
                self.finish(event, Finish::Release).await;
                return (
                    Vec::new(),
                    EventOutcome::FailedTransient(format!("idempotency store: {e}")),
                );
            }
        };
        let event: &IdpEvent = &event;
        let enriched = match self.enrich(event).await {
            Ok(enriched) => enriched,
            Err(e) => {
                let transient = e.is_transient();
                self.finish(event, mode.after_failure(transient)).await;
                let detail = format!("fetching current values from the IdP: {e}");
                return (
                    Vec::new(),
                    if transient {
                        EventOutcome::FailedTransient(detail)
                    } else {
                        EventOutcome::FailedPermanent(detail)
                    },
                );
            }
        };
        let event = &enriched;
        let operations = match self.plan_with_idp(event).await {
            Planned::Operations(ops) => ops,
            Planned::Skip(reason) => {
                self.finish(event, Finish::Done).await;
                return (Vec::new(), EventOutcome::Skipped(reason));
            }
            Planned::Retry(reason) => {
                self.finish(event, Finish::Release).await;
                return (Vec::new(), EventOutcome::FailedTransient(reason));
            }
            Planned::Done(what) => {
                self.finish(event, Finish::Done).await;
                return (Vec::new(), EventOutcome::Applied(what));
            }
        };
        let names: Vec<OperationKind> = operations.iter().map(Operation::kind).collect();
        let mut changed = Vec::new();
        let mut unchanged = Vec::new();
        for op in &operations {
            match self.directory.apply(op).await {
                Ok(OpOutcome::Changed(effect)) => changed.push(effect.to_string()),
                Ok(OpOutcome::Unchanged(effect)) => unchanged.push(effect.to_string()),
                Err(ApplyError::LoginHeld { owner, detail }) => {
                    match self.holder_is_newer(&owner, occurred_at_ms).await {
                        Ok(Some(reason)) => {
                            self.finish(event, Finish::Done).await;
                            return (names, EventOutcome::Skipped(reason));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(event_id = %event.id, error = %e, "could not read the holder's watermark; the event waits")
                        }
                    }
                    self.finish(event, Finish::Release).await;
                    return (
                        names,
                        EventOutcome::FailedTransient(format!("{op}: waiting: {detail}")),
                    );
                }
                Err(e) => {
                    let transient = e.is_transient();
                    self.finish(event, mode.after_failure(transient)).await;
                    let detail = format!("{op}: {e}");
                    return (
                        names,
                        if transient {
                            EventOutcome::FailedTransient(detail)
                        } else {
                            EventOutcome::FailedPermanent(detail)
                        },
                    );
                }
            }
        }
        if let Some(at) = occurred_at_ms {
            for key in &advance {
                if let Err(e) = self.store.set_watermark(key, at).await {
                    // Duo has the change, but without its time a late, older
                    // event could undo it: retry the event (its operations
                    // are idempotent) so the time gets recorded.
                    self.finish(event, Finish::Release).await;
                    return (
                        names,
                        EventOutcome::FailedTransient(format!(
                            "applied, but recording its event time failed (retrying): {e}"
                        )),
                    );
                }
            }
        }
        self.finish(event, Finish::Done).await;
        let outcome = if changed.is_empty() {
            EventOutcome::Unchanged(unchanged.join("; "))
        } else {
            EventOutcome::Applied(changed.join("; "))
        };
        (names, outcome)
    }

    /// Fills in what the event does not carry, from the IdP API when one is
    /// configured: the new profile of an Okta profile update, the new name of
    /// a renamed group, the name of a group/role known only by id. A user or
    /// group the IdP no longer has is left as it is (the planner decides).
    async fn enrich(&self, event: &IdpEvent) -> Result<IdpEvent, IdpError> {
        let mut event = event.clone();
        let source = event.source;
        match &mut event.change {
            Change::UserProfileChanged {
                user,
                profile: profile @ None,
                ..
            } => {
                if let Some(id) = user.idp_id.clone()
                    && let Some(found) = self.lookups.user(source, &id).await
                {
                    match found {
                        Ok(found) => *profile = Some(found.profile),
                        Err(IdpError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Change::GroupRenamed {
                group,
                new_name: new_name @ None,
            } => {
                if let Some(name) = self.group_name(source, group).await? {
                    *new_name = Some(name);
                }
            }
            Change::MembershipAdded { group, .. }
            | Change::MembershipRemoved { group, .. }
            | Change::GroupCreated { group }
                if group.name.is_none() =>
            {
                group.name = self.group_name(source, group).await?;
            }
            _ => {}
        }
        Ok(event)
    }

    async fn group_name(
        &self,
        source: Source,
        group: &GroupRef,
    ) -> Result<Option<String>, IdpError> {
        let Some(id) = &group.idp_id else {
            return Ok(None);
        };
        match self.lookups.group(source, id).await {
            None | Some(Err(IdpError::NotFound)) => Ok(None),
            Some(Ok(found)) => Ok(Some(found.name)),
            Some(Err(e)) => Err(e),
        }
    }

    /// Compares the event's time with the watermarks of what it touches
    /// (see [`crate::order`]): stale → skip; a create whose state (or
    /// profile) is stale drops that part. Answers the event to apply and
    /// the watermarks to advance once it has applied.
    async fn order(&self, event: &IdpEvent) -> Result<Ordered, crate::store::StoreError> {
        let Some(at) = event.occurred_at.as_deref().and_then(parse_time_ms) else {
            return Ok(Ordered::Apply(Box::new(ToApply {
                event: event.clone(),
                occurred_at_ms: None,
                advance: Vec::new(),
            })));
        };
        let mut event = event.clone();
        let mut advance = Vec::new();
        let mut drop_state = false;
        let mut drop_profile = false;
        for aspect in aspects(&event) {
            let newer = self.store.watermark(&aspect.key).await?.filter(|w| *w > at);
            match (aspect.role, newer) {
                (Role::Guard | Role::Sets, Some(w)) => {
                    return Ok(Ordered::Stale(format!(
                        "stale: {} changed by a newer event ({}) than this one ({})",
                        aspect.key,
                        crate::time::rfc3339_millis(w),
                        crate::time::rfc3339_millis(at)
                    )));
                }
                (Role::UpsertState, Some(_)) => drop_state = true,
                (Role::UpsertProfile, Some(_)) => drop_profile = true,
                (Role::Guard, None) => {}
                (Role::Sets | Role::UpsertState | Role::UpsertProfile | Role::Records, None)
                | (Role::Records, Some(_)) => {
                    advance.push(aspect.key);
                }
            }
        }
        if let Change::UserUpserted { user, state, .. } = &mut event.change {
            if drop_state {
                *state = None;
            }
            if drop_profile {
                match *state {
                    Some(state) => {
                        event.change = Change::UserStateChanged {
                            user: user.clone(),
                            state,
                        };
                    }
                    None => {
                        return Ok(Ordered::Stale(
                            "stale: the user's profile and state were changed by newer events"
                                .into(),
                        ));
                    }
                }
            }
        }
        Ok(Ordered::Apply(Box::new(ToApply {
            event,
            occurred_at_ms: Some(at),
            advance,
        })))
    }

    /// The event's login is held by the account of another identity
    /// (`owner`). Two identities never hold one login at once in the IdP,
    /// so if `owner` was seen in an event newer than this one, this event's
    /// identity is the earlier holder: it is stale (answers why). Otherwise
    /// — `owner` is the earlier one, or was never seen — the event waits
    /// for `owner`'s account to go.
    async fn holder_is_newer(
        &self,
        owner: &str,
        at: Option<i64>,
    ) -> Result<Option<String>, crate::store::StoreError> {
        let Some(at) = at else { return Ok(None) };
        let seen = self.store.watermark(&crate::order::seen_key(owner)).await?;
        Ok(seen.filter(|seen| *seen > at).map(|seen| {
            format!(
                "stale: the login was given to {owner} (seen at {}) after this event ({}); this event's identity is gone",
                crate::time::rfc3339_millis(seen),
                crate::time::rfc3339_millis(at)
            )
        }))
    }

    /// Records the event as done, or releases it for a retry.
    async fn finish(&self, event: &IdpEvent, finish: Finish) {
        let result = match finish {
            Finish::Done => self.store.complete(&event.id).await,
            Finish::Release => self.store.release(&event.id).await,
        };
        if let Err(e) = result {
            tracing::error!(event_id = %event.id, error = %e, "idempotency store write failed");
        }
    }

    // ---- reconcile on the event path (issue 8) ----

    /// Plans one event. With the IdP API of its source configured, an event
    /// about one user becomes "make this user match the IdP"
    /// ([`crate::idp_sync::plan_event_with_idp`]), so stale, repeated and
    /// missed events heal; otherwise the event alone decides ([`plan_event`]).
    async fn plan_with_idp(&self, event: &IdpEvent) -> Planned {
        if let Change::SubscriptionLifecycle {
            subscription,
            lifecycle,
        } = &event.change
            && let Some(api) = &self.lookups.entra
        {
            let hook = self.catch_up.0.as_ref();
            if let (Lifecycle::Missed, Some(hook)) = (lifecycle, hook) {
                let what = format!("missed notifications on subscription {subscription}");
                return self.catch_up_after(hook, event, &what).await;
            }
            // A subscription re-created (Graph had removed it) missed the
            // changes in between: a catch-up follows when the relay has one.
            let (planned, recreated) =
                crate::idp_sync::entra::plan_lifecycle(event, subscription, *lifecycle, api).await;
            if let (Planned::Done(done), true, Some(hook)) = (&planned, recreated, hook) {
                return self.catch_up_after(hook, event, done).await;
            }
            return planned;
        }
        if let Some(reason) = crate::plan::unmapped_attribute_change(event, &self.rules) {
            return Planned::Skip(reason);
        }
        if self.lookups.is_empty() {
            return plan_event(event, &self.rules);
        }
        crate::idp_sync::plan_event_with_idp(event, &self.rules, &self.lookups, &self.directory)
            .await
    }
}

impl<D: Directory, S: IdempotencyStore> Relay<D, S> {
    /// Runs the catch-up `hook` after `what` (a lifecycle event): done,
    /// retried when it failed transiently, else an error line naming the
    /// command to run.
    async fn catch_up_after(
        &self,
        hook: &Arc<dyn CatchUpHook<D, S>>,
        event: &IdpEvent,
        what: &str,
    ) -> Planned {
        match hook.run(self).await {
            Ok(done) => Planned::Done(format!("{what}; caught up ({done})")),
            Err((true, why)) => {
                tracing::warn!(event_id = %event.id, source = %event.source, "{what}; the catch-up failed: {why}; will retry");
                Planned::Retry(why)
            }
            Err((false, why)) => {
                let reason = format!(
                    "{what}; the catch-up failed: {why}; run {}",
                    crate::plan::lifecycle_command(Lifecycle::Missed)
                );
                tracing::error!(event_id = %event.id, source = %event.source, "{reason}");
                Planned::Skip(reason)
            }
        }
    }
}

/// What [`Relay::order`] decided.
enum Ordered {
    /// Apply this (possibly trimmed) event, then advance its watermarks.
    Apply(Box<ToApply>),
    /// Skip it: a newer event already set what it would set (the reason).
    Stale(String),
}

/// An event [`Relay::order`] let through, and what to record once it has
/// applied.
struct ToApply {
    /// The event, possibly trimmed (a create whose state or profile is
    /// stale loses that part).
    event: IdpEvent,
    /// The event's time (Unix ms), when it carries one it can be ordered by.
    occurred_at_ms: Option<i64>,
    /// The watermark keys to advance to `occurred_at_ms` once it has applied.
    advance: Vec<String>,
}

/// Who applies an event, which decides what a permanent failure and a
/// claim held by another delivery become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApplyMode {
    /// The IdP's request waits for the answer: a permanent failure is
    /// recorded as done (the IdP must not retry it forever), and a claim
    /// held by another delivery is a duplicate (that delivery answers).
    Sync,
    /// A queue worker: a permanent failure is released (it goes to dead
    /// letters, and a replay must be able to apply it), and a claim held
    /// by another delivery waits for a later attempt.
    Queue,
}

impl ApplyMode {
    /// What an event that failed becomes in the idempotency store.
    fn after_failure(self, transient: bool) -> Finish {
        match (self, transient) {
            (Self::Sync, false) => Finish::Done,
            (Self::Sync, true) | (Self::Queue, _) => Finish::Release,
        }
    }
}

/// How [`Relay::finish`] leaves an event's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Recorded as done: a later delivery is a duplicate.
    Done,
    /// Released: a later delivery applies it again.
    Release,
}

/// A delivery refused by [`Relay::authenticate`] (the reason is logged,
/// never a value); its answer is [`Answer::Refused`].
#[derive(Debug)]
pub struct Refused(());

impl Refused {
    pub fn answer(self) -> Answer {
        Answer::Refused
    }
}

fn log_refusal(source: Source, e: &crate::verify::VerifyFailure) {
    tracing::warn!(source = %source, verify_failure = e.reason(), "delivery refused: {e}");
}

/// A delivery that failed verification: logged with the reason (never a
/// value), refused.
fn refused(source: Source, e: &crate::verify::VerifyFailure) -> Answer {
    log_refusal(source, e);
    Answer::Refused
}

/// A verified body that is not a delivery of its source, with the parser's
/// reason (it names fields, never values).
fn not_a_delivery(source: Source, e: &ParseError) -> Answer {
    tracing::warn!(source = %source, parse_error = %e, "delivery is not a valid {source} payload");
    Answer::NotADelivery(e.to_string())
}

/// Runs `concurrency` workers that apply the queue's messages through
/// `relay` until `shutdown` resolves; a worker finishes the message it holds
/// before it stops (what is left stays on disk for the next start).
pub async fn run_workers<D, S>(
    queue: Arc<DiskQueue>,
    relay: Arc<Relay<D, S>>,
    policy: QueuePolicy,
    concurrency: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (queue, relay, mut stopped) = (queue.clone(), relay.clone(), stop.subscribe());
        workers.spawn(async move {
            while !*stopped.borrow() {
                // Wait for the Duo pace before taking a message, not while
                // holding one: a worker waiting for a token must not keep
                // its subject (and the events queued behind it) from others.
                if let Some(pacer) = relay.directory().pacer() {
                    tokio::select! {
                        () = pacer.ready() => {}
                        _ = stopped.changed() => continue,
                    }
                }
                let lease = tokio::select! {
                    lease = queue.lease_or_wait(std::time::Duration::from_secs(1)) => lease,
                    _ = stopped.changed() => None,
                };
                let Some(lease) = lease else { continue };
                let (_, disposition) = relay.process(&lease.body, lease.attempt, &policy).await;
                queue.settle(&lease, &disposition, &policy);
            }
        });
    }
    shutdown.await;
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, UserProfile, UserRef};

    #[tokio::test]
    async fn login_locks_serialize_one_login_and_are_forgotten_when_free() {
        let locks = LoginLocks::default();
        let a = locks.lock(vec!["b".into(), "a".into(), "a".into()]).await;
        assert_eq!(a.len(), 2);
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            locks.lock(vec!["a".into()]),
        )
        .await;
        assert!(waiting.is_err(), "a second holder of login a must wait");
        let other = locks.lock(vec!["c".into()]).await;
        drop(a);
        let again = locks.lock(vec!["a".into()]).await;
        drop((again, other));
        assert!(locks.table().is_empty());
    }

    #[test]
    fn an_events_logins_include_a_new_and_an_earlier_one() {
        let event = IdpEvent {
            id: EventId::new(Source::Okta, "e"),
            source: Source::Okta,
            event_type: "t".into(),
            occurred_at: None,
            change: Change::UserProfileChanged {
                user: UserRef {
                    idp_id: Some("00u1".into()),
                    login: Some("Jane@X".into()),
                },
                profile: Some(UserProfile {
                    login: Some("jane2@x".into()),
                    ..UserProfile::default()
                }),
                previous_login: Some("jane@x".into()),
            },
        };
        let mut logins = event_logins(&event);
        logins.sort();
        logins.dedup();
        assert_eq!(
            logins,
            ["user:okta:login:jane2@x", "user:okta:login:jane@x"]
        );
    }
}
