//! Service: deliver notifications. Every replica runs the loop; only the leader acts,
//! every `OWP_NOTIFY_INTERVAL`: it announces what only time makes true (PRs stale for
//! `OWP_PR_STALE_AFTER`, budgets full for `OWP_NOTIFY_BUDGET_FULL_AFTER`), then sends what
//! is due, a batch at a time, concurrently. A 2xx answer delivers; 408, 429, 5xx, a
//! timeout or a refused connection retries with backoff (the interval doubling, at most an
//! hour, at least a 429's Retry-After); any other answer, a refused address, or
//! `OWP_NOTIFY_MAX_ATTEMPTS` tries gives it up, shown by
//! `GET /v1/admin/notifications/deliveries?state=failed` and `owp_notifications_total`.
//!
//! The client reaches only public addresses unless `OWP_NOTIFY_ALLOW_PRIVATE`: every
//! name is resolved through [`PublicOnly`], literal addresses are checked per delivery,
//! redirects are not followed and no proxy is used, so a channel's URL cannot reach
//! inside the operator's network. Errors are recorded without the URL (Slack's and
//! Discord's carry their credential).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::app::AppContext;
use crate::domain::notify::{self, Kind};
use crate::store::notifications::{self as outbox, Due};
use crate::store::StoreResult;

/// Notifications one run claims.
const BATCH: i64 = 50;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Delivers on every tick while this replica leads, until the replica stops.
pub async fn run_service(app: AppContext) {
    let client = client(&app.settings.notify);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(app.settings.notify.notify_interval) => {}
            () = app.stopped() => break,
        }
        if !app.is_leader.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(e) = run(&app, &client).await {
            tracing::warn!(error = %e, "notifications failed; trying again next interval");
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ran {
    pub announced: i64,
    pub delivered: usize,
    pub retried: usize,
    pub gave_up: usize,
}

/// One run: the scans, then one batch of deliveries.
pub async fn run(app: &AppContext, client: &reqwest::Client) -> StoreResult<Ran> {
    let mut ran = Ran::default();
    if outbox::anyone_asks(&app.pool, "pr_stale").await? {
        ran.announced += outbox::scan_stale_prs(&app.pool, app.settings.pr_stale_after).await?;
    }
    if outbox::anyone_asks(&app.pool, "budget_full").await? {
        let after = app.settings.notify.notify_budget_full_after;
        ran.announced += outbox::scan_full_budgets(&app.pool, after).await?;
    }
    let hold = app.settings.notify.notify_timeout * 3;
    let due = outbox::claim_due(&app.pool, BATCH, hold).await?;
    let sent = futures::future::join_all(due.iter().map(|d| send(app, client, d))).await;
    for (d, answer) in due.iter().zip(sent) {
        match settle(app, d, answer).await? {
            "delivered" => ran.delivered += 1,
            "retried" => ran.retried += 1,
            _ => ran.gave_up += 1,
        }
    }
    crate::metrics::notifications_pending(outbox::pending(&app.pool).await?);
    Ok(ran)
}

/// How one try ended.
enum Answer {
    Delivered,
    /// Worth another try, not before this long.
    Retry(String, Duration),
    /// No retry can change it.
    Refused(String),
}

/// One try: the channel's body, signed, posted.
async fn send(app: &AppContext, client: &reqwest::Client, d: &Due) -> Answer {
    let allow_private = app.settings.notify.notify_allow_private;
    // a literal address never meets the resolver; an old channel may predate the setting
    if let Err(why) = notify::check_url(&d.url, allow_private) {
        return Answer::Refused(format!("the channel's URL {why}"));
    }
    let Some(kind) = Kind::parse(&d.kind) else {
        return Answer::Refused(format!("unknown channel kind {}", d.kind));
    };
    let body = notify::body(kind, d.id, &d.event, &d.created_at.to_rfc3339(), &d.facts);
    let body = serde_json::to_vec(&body).expect("JSON values serialise");
    let now = chrono::Utc::now().timestamp();
    let answer = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-owp-event", &d.event)
        .header("x-owp-delivery", d.id.to_string())
        .header("x-owp-signature", notify::signature(&d.secret, now, &body))
        .body(body)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Answer::Delivered,
        Ok(r) => {
            let status = r.status().as_u16();
            let wait = retry_after(&r).unwrap_or_default();
            let what = format!("HTTP {status}");
            if matches!(status, 408 | 429) || status >= 500 {
                Answer::Retry(what, wait)
            } else {
                Answer::Refused(what)
            }
        }
        // without the URL: it may carry the channel's credential
        Err(e) => {
            let e = e.without_url();
            if is_not_public(&e) {
                Answer::Refused(format!("{e}: {}", chain(&e)))
            } else {
                Answer::Retry(format!("{e}: {}", chain(&e)), Duration::ZERO)
            }
        }
    }
}

/// Did the resolver refuse the name ([`NotPublic`], somewhere in the chain)?
fn is_not_public(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<NotPublic>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The innermost cause of an error, for a line an operator reads.
fn chain(e: &dyn std::error::Error) -> String {
    let mut cause = e.source();
    let mut last = String::new();
    while let Some(c) = cause {
        last = c.to_string();
        cause = c.source();
    }
    last
}

/// A 429's or 503's `Retry-After` in seconds.
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = r
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// Records how a try ended; the metric's result.
async fn settle(app: &AppContext, d: &Due, answer: Answer) -> StoreResult<&'static str> {
    let max_attempts = app.settings.notify.notify_max_attempts;
    let result = match answer {
        Answer::Delivered => {
            outbox::delivered(&app.pool, d.id).await?;
            "delivered"
        }
        Answer::Retry(error, wait) if d.attempts < max_attempts => {
            let delay = backoff(app.settings.notify.notify_interval, d.attempts).max(wait);
            outbox::retry_later(&app.pool, d.id, delay.min(MAX_BACKOFF), &error).await?;
            "retried"
        }
        Answer::Retry(error, _) | Answer::Refused(error) => {
            tracing::warn!(delivery = d.id, event = %d.event, error = %error, "notification given up");
            outbox::give_up(&app.pool, d.id, &error).await?;
            "gave_up"
        }
    };
    crate::metrics::notifications(result);
    Ok(result)
}

/// `base * 2^(attempts-1)`, at most an hour.
fn backoff(base: Duration, attempts: i32) -> Duration {
    crate::domain::retry::doubling(base, attempts, MAX_BACKOFF)
}

/// The delivery client: public addresses only unless allowed, no redirects, no proxy.
pub fn client(settings: &crate::config::NotifySettings) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(settings.notify_timeout)
        .connect_timeout(settings.notify_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("owp-pool/", env!("CARGO_PKG_VERSION")));
    if !settings.notify_allow_private {
        b = b.dns_resolver(Arc::new(PublicOnly));
    }
    b.build().expect("a client with a resolver builds")
}

/// A name that resolves to no public address.
#[derive(Debug, thiserror::Error)]
#[error("{0} has no public address")]
pub struct NotPublic(String);

/// Resolves a name to its public addresses only; none left is an error, so a name that
/// points into a private network (or is re-pointed there) is never connected to.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| notify::is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(Box::new(NotPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let s = Duration::from_secs(5);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 3), Duration::from_secs(20));
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }
}
