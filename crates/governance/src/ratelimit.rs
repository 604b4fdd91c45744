//! Rate limits per key and per tenant: requests per minute, tokens per minute and
//! tokens per UTC day.
//!
//! Per-minute limits are token buckets that hold at most the limit and refill at
//! limit/60 per second, so a key with `rpm = 60` may burst 60 requests and then make one
//! a second. The daily token quota is a counter that resets at midnight UTC. A request
//! must fit the limits of its key *and* of its tenant; when one refuses, nothing is
//! taken from the others.
//!
//! State lives in this process's memory. With several replicas each enforces the limits
//! on its own share of the traffic (N replicas let through up to N× the limit); the
//! daily counter is seeded from the metered usage in the store on first use each day
//! ([`RateLimiter::days_to_seed`]), so it survives a restart. Both are documented
//! operator trade-offs: limits are for fairness and protection, the metered usage in the store
//! is the record of what was used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store::KeyLimits;
use types::{Day, TenantName};

/// The limits that apply to one caller: its key's and its tenant's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub key: KeyLimits,
    pub tenant: KeyLimits,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.key.is_unlimited() && self.tenant.is_unlimited()
    }
}

/// Whose limit: a key's own, or the one its tenant shares among its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOwner {
    Key,
    Tenant,
}

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
}

/// A refusal: which limit, its value, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct LimitExceeded {
    pub owner: LimitOwner,
    pub kind: LimitKind,
    pub limit: u64,
    /// What the request needed (1 for a request, its tokens otherwise).
    pub requested: u64,
    /// How long until the request would fit; for a request larger than the limit
    /// itself, how long until the window is full again.
    pub retry_after: Duration,
}

impl LimitExceeded {
    /// Whether waiting can help: false when the request alone exceeds the limit.
    pub fn can_ever_fit(&self) -> bool {
        self.requested <= self.limit
    }

    fn describe(&self) -> String {
        let owner = match self.owner {
            LimitOwner::Key => "this API key",
            LimitOwner::Tenant => "this tenant",
        };
        let (unit, window) = match self.kind {
            LimitKind::RequestsPerMinute => ("requests", "per minute"),
            LimitKind::TokensPerMinute => ("tokens", "per minute"),
            LimitKind::TokensPerDay => ("tokens", "per day (UTC)"),
        };
        let reset = format_duration(self.retry_after);
        if self.can_ever_fit() {
            format!(
                "rate limit reached: {owner} may use {} {unit} {window}; retry in {reset}",
                self.limit
            )
        } else {
            format!(
                "this request needs {} {unit}, more than {owner} may use {window} ({}); \
                 send a smaller request",
                self.requested, self.limit
            )
        }
    }
}

/// One window as OpenAI's `x-ratelimit-*` headers describe it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStatus {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window is full again.
    pub reset: Duration,
}

/// The most constraining request and token windows of a caller, if limited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateStatus {
    pub requests: Option<WindowStatus>,
    pub tokens: Option<WindowStatus>,
}

/// The in-memory limiter of one server process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<Subject, Windows>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Key(String),
    Tenant(TenantName),
}

#[derive(Debug, Default)]
struct Windows {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    tokens_today: Option<DayCounter>,
}

/// Who is charged: the key and its tenant with their limits.
#[derive(Debug, Clone, Copy)]
pub struct Charged<'a> {
    pub key_id: &'a str,
    pub tenant: &'a TenantName,
    pub limits: Limits,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits one request against the requests-per-minute limits.
    pub fn admit_request(&self, who: Charged<'_>) -> Result<(), LimitExceeded> {
        self.take(who, LimitCharge::Request, Instant::now(), Day::today())
    }

    /// Charges `n_tokens` against the tokens-per-minute and tokens-per-day limits.
    pub fn charge_tokens(&self, who: Charged<'_>, n_tokens: u64) -> Result<(), LimitExceeded> {
        self.take(
            who,
            LimitCharge::Tokens(n_tokens),
            Instant::now(),
            Day::today(),
        )
    }

    /// What is left in the most constraining windows, for the response headers.
    pub fn status(&self, who: Charged<'_>) -> RateStatus {
        self.status_at(who, Instant::now(), Day::today(), types::unix_now())
    }

    /// The daily quotas of `who` whose count for today has not yet been read from the
    /// store, marked as read: the caller adds what the store says with
    /// [`RateLimiter::add_to_day`]. This is how daily quotas survive a restart.
    pub fn days_to_seed(&self, who: Charged<'_>) -> Vec<LimitOwner> {
        // Only daily quotas are seeded; the windows are synced again by `take`.
        if positive(who.limits.key.tpd).is_none() && positive(who.limits.tenant.tpd).is_none() {
            return Vec::new();
        }
        let (now, today) = (Instant::now(), Day::today());
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut owners = Vec::new();
        for (owner, subject, limits) in subjects(&who) {
            let entry = windows.entry(subject).or_default();
            entry.sync(&limits, now, today);
            if let Some(day) = entry.tokens_today.as_mut().filter(|day| !day.seeded) {
                day.seeded = true;
                owners.push(owner);
            }
        }
        owners
    }

    /// Adds `tokens` used earlier today (by this server before a restart, or by other
    /// replicas) to the daily quota of `owner`.
    pub fn add_to_day(&self, who: Charged<'_>, owner: LimitOwner, tokens: u64) {
        let today = Day::today();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let subject = match owner {
            LimitOwner::Key => Subject::Key(who.key_id.to_owned()),
            LimitOwner::Tenant => Subject::Tenant(who.tenant.clone()),
        };
        if let Some(day) = windows
            .get_mut(&subject)
            .and_then(|entry| entry.tokens_today.as_mut())
            .filter(|day| day.day == today)
        {
            day.used = day.used.saturating_add(tokens);
        }
    }

    fn take(
        &self,
        who: Charged<'_>,
        charge: LimitCharge,
        now: Instant,
        today: Day,
    ) -> Result<(), LimitExceeded> {
        if who.limits.is_unlimited() {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let subjects = subjects(&who);
        // First check every window, then take from all: a refusal costs nothing.
        for (owner, subject, limits) in &subjects {
            let entry = windows.entry(subject.clone()).or_default();
            entry.sync(limits, now, today);
            entry
                .check(charge, now)
                .map_err(|(kind, limit, wait)| LimitExceeded {
                    owner: *owner,
                    kind,
                    limit,
                    requested: charge.amount(),
                    retry_after: wait,
                })?;
        }
        for (_, subject, _) in &subjects {
            if let Some(entry) = windows.get_mut(subject) {
                entry.take(charge);
            }
        }
        Ok(())
    }

    fn status_at(&self, who: Charged<'_>, now: Instant, today: Day, unix_now: i64) -> RateStatus {
        if who.limits.is_unlimited() {
            return RateStatus::default();
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut status = RateStatus::default();
        for (_, subject, limits) in subjects(&who) {
            let entry = windows.entry(subject).or_default();
            entry.sync(&limits, now, today);
            let until_midnight =
                Duration::from_secs((today.next_midnight_unix() - unix_now).max(0) as u64);
            let day = entry
                .tokens_today
                .as_ref()
                .map(|day| day.status(until_midnight));
            let minute = entry.requests.as_ref().map(|b| b.status(now));
            status.requests = tighter(status.requests, minute);
            let tokens = entry.tokens.as_ref().map(|b| b.status(now));
            status.tokens = tighter(tighter(status.tokens, tokens), day);
        }
        status
    }
}

fn subjects(who: &Charged<'_>) -> [(LimitOwner, Subject, KeyLimits); 2] {
    [
        (
            LimitOwner::Key,
            Subject::Key(who.key_id.to_owned()),
            who.limits.key,
        ),
        (
            LimitOwner::Tenant,
            Subject::Tenant(who.tenant.clone()),
            who.limits.tenant,
        ),
    ]
}

/// The window with fewer remaining; on a tie, the one that resets later.
fn tighter(a: Option<WindowStatus>, b: Option<WindowStatus>) -> Option<WindowStatus> {
    match (a, b) {
        (Some(a), Some(b))
            if (b.remaining, std::cmp::Reverse(b.reset))
                < (a.remaining, std::cmp::Reverse(a.reset)) =>
        {
            Some(b)
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

#[derive(Debug, Clone, Copy)]
enum LimitCharge {
    Request,
    Tokens(u64),
}

impl LimitCharge {
    fn amount(self) -> u64 {
        match self {
            Self::Request => 1,
            Self::Tokens(n) => n,
        }
    }
}

type Refusal = (LimitKind, u64, Duration);

impl Windows {
    /// Follows the current limits: creates, resizes or drops windows.
    fn sync(&mut self, limits: &KeyLimits, now: Instant, today: Day) {
        sync_bucket(&mut self.requests, limits.rpm, now);
        sync_bucket(&mut self.tokens, limits.tpm, now);
        match positive(limits.tpd) {
            None => self.tokens_today = None,
            Some(limit) => {
                let day = self.tokens_today.get_or_insert(DayCounter {
                    limit,
                    day: today,
                    used: 0,
                    seeded: false,
                });
                day.limit = limit;
                if day.day != today {
                    day.day = today;
                    day.used = 0;
                    day.seeded = false;
                }
            }
        }
    }

    fn check(&mut self, charge: LimitCharge, now: Instant) -> Result<(), Refusal> {
        match charge {
            LimitCharge::Request => {
                if let Some(bucket) = &mut self.requests {
                    bucket.check(1, now, LimitKind::RequestsPerMinute)?;
                }
            }
            LimitCharge::Tokens(n) => {
                if let Some(bucket) = &mut self.tokens {
                    bucket.check(n, now, LimitKind::TokensPerMinute)?;
                }
                if let Some(day) = &self.tokens_today {
                    day.check(n)?;
                }
            }
        }
        Ok(())
    }

    /// Takes a charge that [`Windows::check`] accepted at the same instant.
    fn take(&mut self, charge: LimitCharge) {
        match charge {
            LimitCharge::Request => {
                if let Some(bucket) = &mut self.requests {
                    bucket.level -= 1.0;
                }
            }
            LimitCharge::Tokens(n) => {
                if let Some(bucket) = &mut self.tokens {
                    bucket.level -= n as f64;
                }
                if let Some(day) = &mut self.tokens_today {
                    day.used = day.used.saturating_add(n);
                }
            }
        }
    }
}

fn positive(limit: Option<i64>) -> Option<u64> {
    limit.and_then(|l| u64::try_from(l).ok()).filter(|&l| l > 0)
}

fn sync_bucket(bucket: &mut Option<Bucket>, limit: Option<i64>, now: Instant) {
    match positive(limit) {
        None => *bucket = None,
        Some(limit) => {
            let bucket = bucket.get_or_insert(Bucket {
                capacity: limit,
                level: limit as f64,
                updated: now,
            });
            bucket.refill(now);
            bucket.capacity = limit;
            bucket.level = bucket.level.min(limit as f64);
        }
    }
}

/// A token bucket refilled at `capacity` per minute.
#[derive(Debug)]
struct Bucket {
    capacity: u64,
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn per_second(&self) -> f64 {
        self.capacity as f64 / 60.0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * self.per_second()).min(self.capacity as f64);
        self.updated = now;
    }

    fn check(&mut self, n: u64, now: Instant, kind: LimitKind) -> Result<(), Refusal> {
        self.refill(now);
        let n = n as f64;
        if n > self.capacity as f64 {
            return Err((kind, self.capacity, self.until(self.capacity as f64)));
        }
        if self.level >= n {
            return Ok(());
        }
        Err((kind, self.capacity, self.until(n)))
    }

    /// How long until the bucket holds `level`.
    fn until(&self, level: f64) -> Duration {
        Duration::from_secs_f64(((level - self.level).max(0.0)) / self.per_second())
    }

    fn status(&self, now: Instant) -> WindowStatus {
        let mut copy = Bucket {
            capacity: self.capacity,
            level: self.level,
            updated: self.updated,
        };
        copy.refill(now);
        WindowStatus {
            limit: copy.capacity,
            remaining: copy.level.max(0.0).floor() as u64,
            reset: copy.until(copy.capacity as f64),
        }
    }
}

/// Tokens used today against a daily quota.
#[derive(Debug)]
struct DayCounter {
    limit: u64,
    day: Day,
    used: u64,
    /// Whether the store's count for `day` has been asked for (see
    /// [`RateLimiter::days_to_seed`]).
    seeded: bool,
}

impl DayCounter {
    fn check(&self, n: u64) -> Result<(), Refusal> {
        if self.used.saturating_add(n) <= self.limit {
            return Ok(());
        }
        let until_midnight = (self.day.next_midnight_unix() - types::unix_now()).max(1);
        Err((
            LimitKind::TokensPerDay,
            self.limit,
            Duration::from_secs(until_midnight as u64),
        ))
    }

    fn status(&self, until_midnight: Duration) -> WindowStatus {
        WindowStatus {
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset: if self.used == 0 {
                Duration::ZERO
            } else {
                until_midnight
            },
        }
    }
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `20ms`, `1s`, `6m0s`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs_f64().ceil() as u64;
    match (seconds / 3600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantName {
        TenantName::try_from("acme").unwrap()
    }

    fn limits(key: (Option<i64>, Option<i64>, Option<i64>), tenant: Option<i64>) -> Limits {
        Limits {
            key: KeyLimits {
                rpm: key.0,
                tpm: key.1,
                tpd: key.2,
            },
            tenant: KeyLimits {
                rpm: tenant,
                ..KeyLimits::default()
            },
        }
    }

    fn who<'a>(key_id: &'a str, tenant: &'a TenantName, limits: Limits) -> Charged<'a> {
        Charged {
            key_id,
            tenant,
            limits,
        }
    }

    #[test]
    fn requests_per_minute_burst_then_refill() {
        let limiter = RateLimiter::new();
        let (t0, today) = (Instant::now(), Day::today());
        let acme = tenant();
        let k = who("k1", &acme, limits((Some(3), None, None), None));
        for _ in 0..3 {
            limiter.take(k, LimitCharge::Request, t0, today).unwrap();
        }
        let refused = limiter
            .take(k, LimitCharge::Request, t0, today)
            .unwrap_err();
        assert_eq!(refused.kind, LimitKind::RequestsPerMinute);
        assert_eq!(refused.owner, LimitOwner::Key);
        assert_eq!(refused.limit, 3);
        // 3 per minute refill one every 20 s.
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert!(
            refused.to_string().contains("3 requests per minute"),
            "{refused}"
        );
        let later = t0 + Duration::from_secs(20);
        limiter.take(k, LimitCharge::Request, later, today).unwrap();
        assert!(limiter.take(k, LimitCharge::Request, later, today).is_err());
        let status = limiter.status_at(k, later, today, 0);
        let requests = status.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (3, 0));
        assert_eq!(requests.reset, Duration::from_secs(60));
        assert_eq!(status.tokens, None);
    }

    #[test]
    fn the_tenant_limit_is_shared_and_a_refusal_takes_nothing() {
        let limiter = RateLimiter::new();
        let (t0, today) = (Instant::now(), Day::today());
        let acme = tenant();
        let a = who("a", &acme, limits((Some(10), None, None), Some(2)));
        let b = who("b", &acme, limits((Some(1), None, None), Some(2)));
        limiter.take(b, LimitCharge::Request, t0, today).unwrap();
        // b's own limit refuses before the tenant's is touched.
        let refused = limiter
            .take(b, LimitCharge::Request, t0, today)
            .unwrap_err();
        assert_eq!(refused.owner, LimitOwner::Key);
        limiter.take(a, LimitCharge::Request, t0, today).unwrap();
        let refused = limiter
            .take(a, LimitCharge::Request, t0, today)
            .unwrap_err();
        assert_eq!(refused.owner, LimitOwner::Tenant);
        // The refused request did not use a of key a's own ten.
        let status = limiter.status_at(a, t0, today, 0).requests.unwrap();
        assert_eq!(
            status.remaining, 0,
            "the tenant's window is the tighter one"
        );
        let key_only = who("a", &acme, limits((Some(10), None, None), None));
        assert_eq!(
            limiter
                .status_at(key_only, t0, today, 0)
                .requests
                .unwrap()
                .remaining,
            9
        );
    }

    #[test]
    fn tokens_per_minute_and_per_day() {
        let limiter = RateLimiter::new();
        let (t0, today) = (Instant::now(), Day::from_unix(0));
        let acme = tenant();
        let k = who("k", &acme, limits((None, Some(600), Some(1000)), None));
        limiter
            .take(k, LimitCharge::Tokens(500), t0, today)
            .unwrap();
        let refused = limiter
            .take(k, LimitCharge::Tokens(200), t0, today)
            .unwrap_err();
        assert_eq!(refused.kind, LimitKind::TokensPerMinute);
        // 100 missing tokens at 10 per second.
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        let later = t0 + Duration::from_secs(60);
        limiter
            .take(k, LimitCharge::Tokens(400), later, today)
            .unwrap();
        let refused = limiter
            .take(
                k,
                LimitCharge::Tokens(200),
                later + Duration::from_secs(60),
                today,
            )
            .unwrap_err();
        assert_eq!(refused.kind, LimitKind::TokensPerDay);
        assert!(
            refused.to_string().contains("1000 tokens per day"),
            "{refused}"
        );
        let status = limiter.status_at(k, later, today, 3_600).tokens.unwrap();
        assert_eq!((status.limit, status.remaining), (1000, 100));
        assert_eq!(status.reset, Duration::from_secs(86_400 - 3_600));
        // A new day starts from zero.
        limiter
            .take(
                k,
                LimitCharge::Tokens(200),
                later + Duration::from_secs(60),
                Day::from_unix(86_400),
            )
            .unwrap();
    }

    #[test]
    fn daily_quotas_are_seeded_once_per_day() {
        let limiter = RateLimiter::new();
        let acme = tenant();
        let mut both = limits((None, None, Some(100)), None);
        both.tenant.tpd = Some(1000);
        let k = who("k", &acme, both);
        assert_eq!(
            limiter.days_to_seed(k),
            [LimitOwner::Key, LimitOwner::Tenant]
        );
        assert_eq!(limiter.days_to_seed(k), [], "asked once");
        limiter.add_to_day(k, LimitOwner::Key, 98);
        let refused = limiter.charge_tokens(k, 3).unwrap_err();
        assert_eq!(
            (refused.owner, refused.kind),
            (LimitOwner::Key, LimitKind::TokensPerDay)
        );
        limiter.charge_tokens(k, 2).unwrap();
        // Another key of the tenant starts from the tenant's count.
        let other = who("other", &acme, limits((None, None, None), None));
        let other = Charged {
            limits: Limits {
                tenant: both.tenant,
                ..other.limits
            },
            ..other
        };
        assert_eq!(limiter.days_to_seed(other), []);
        limiter.add_to_day(k, LimitOwner::Tenant, 997);
        assert!(limiter.charge_tokens(other, 2).is_err());
        limiter.charge_tokens(other, 1).unwrap();
    }

    #[test]
    fn a_request_larger_than_the_limit_says_so() {
        let limiter = RateLimiter::new();
        let acme = tenant();
        let k = who("k", &acme, limits((None, Some(100), None), None));
        let refused = limiter
            .take(k, LimitCharge::Tokens(101), Instant::now(), Day::today())
            .unwrap_err();
        assert!(!refused.can_ever_fit());
        assert!(
            refused.to_string().contains("needs 101 tokens"),
            "{refused}"
        );
    }

    #[test]
    fn unlimited_callers_leave_no_state() {
        let limiter = RateLimiter::new();
        let acme = tenant();
        let k = who("k", &acme, Limits::default());
        for _ in 0..1000 {
            limiter.admit_request(k).unwrap();
        }
        assert_eq!(limiter.status(k), RateStatus::default());
        assert!(limiter.windows.lock().unwrap().is_empty());
    }

    #[test]
    fn durations_print_like_openai() {
        let check = |millis: u64, text: &str| {
            assert_eq!(format_duration(Duration::from_millis(millis)), text);
        };
        check(0, "0ms");
        check(20, "20ms");
        check(1000, "1s");
        check(1500, "2s");
        check(360_000, "6m0s");
        check(3_661_000, "1h1m1s");
    }
}
