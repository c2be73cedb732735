//! What one client may use: requests per second per worker token (`OWP_WORKER_RATE`,
//! `OWP_WORKER_BURST`), requests in flight per worker (`OWP_WORKER_MAX_IN_FLIGHT`), and per
//! client address for unauthenticated routes and failed authentication (`OWP_IP_RATE`,
//! `OWP_IP_BURST`). Rates are GCRA buckets from `governor`; all state is in memory, per
//! replica (a client spread over N replicas gets up to N times the rate).
//!
//! A limit is keyed by what authenticated, never by which headers a request carried: a
//! token earns its own bucket only once it has authenticated on this replica (`known`);
//! until then its requests are anonymous requests of their address. IPv6 addresses are
//! grouped by network (`OWP_IPV6_PREFIX`), since one host holds a whole /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Cidr, HttpLimits};

/// A worker's key: the SHA-256 digest of its bearer token, so limits apply before (and
/// without) the database lookup that authenticates it.
pub type TokenKey = [u8; 32];

/// How long a worker's request waits for one of its in-flight slots before 429.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);
/// How often idle per-client state is dropped.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);
/// A token that authenticated keeps its own limits this long after its last success.
const KNOWN_FOR: Duration = Duration::from_secs(600);

/// Why a request was refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Worker(Duration),
    Ip(Duration),
    InFlight,
}

impl Refused {
    /// The metric label.
    pub fn limit(&self) -> &'static str {
        match self {
            Self::Worker(_) => "worker",
            Self::Ip(_) => "ip",
            Self::InFlight => "in_flight",
        }
    }

    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Worker(d) | Self::Ip(d) => d.as_secs_f64().ceil().max(1.0) as u64,
            Self::InFlight => 1,
        }
    }
}

pub struct Limits {
    workers: DefaultKeyedRateLimiter<TokenKey>,
    ips: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses whose failed authentications went over their rate: refused until then,
    /// before any database lookup.
    penalised: Mutex<HashMap<IpAddr, Instant>>,
    in_flight: Mutex<HashMap<TokenKey, Arc<Semaphore>>>,
    /// Worker tokens (and dashboard sessions) that authenticated here, and when last: only
    /// these get per-token state, and only these skip their address's limits.
    known: Mutex<HashMap<TokenKey, Instant>>,
    max_in_flight: usize,
    ipv6_prefix: u8,
    trusted_proxies: Vec<Cidr>,
    clock: DefaultClock,
    last_housekeeping: Mutex<Instant>,
}

fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Limits {
    pub fn new(l: &HttpLimits) -> Self {
        Self {
            workers: RateLimiter::keyed(quota(l.worker_rate, l.worker_burst)),
            ips: RateLimiter::keyed(quota(l.ip_rate, l.ip_burst)),
            penalised: Mutex::default(),
            in_flight: Mutex::default(),
            known: Mutex::default(),
            max_in_flight: l.worker_max_in_flight.max(1),
            ipv6_prefix: l.ipv6_prefix.clamp(1, 128),
            trusted_proxies: l.trusted_proxies.clone(),
            clock: DefaultClock::default(),
            last_housekeeping: Mutex::new(Instant::now()),
        }
    }

    /// One request by this worker token.
    pub fn worker_request(&self, key: &TokenKey) -> Result<(), Refused> {
        self.housekeeping();
        self.workers
            .check_key(key)
            .map_err(|n| Refused::Worker(n.wait_time_from(self.clock.now())))
    }

    /// One unauthenticated request from this address (or one whose credential has not
    /// authenticated here yet).
    pub fn anonymous_request(&self, ip: IpAddr) -> Result<(), Refused> {
        self.housekeeping();
        self.penalty(ip)?;
        self.ips
            .check_key(&self.address_key(ip))
            .map_err(|n| Refused::Ip(n.wait_time_from(self.clock.now())))
    }

    /// Refuses an address whose failed authentications are over its rate.
    pub fn penalty(&self, ip: IpAddr) -> Result<(), Refused> {
        let penalised = self.penalised.lock().expect("limits lock");
        match penalised.get(&self.address_key(ip)) {
            Some(until) if *until > Instant::now() => Err(Refused::Ip(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// A failed authentication from this address: it counts against `OWP_IP_RATE`, and
    /// once over it the address is refused until its bucket allows again.
    pub fn failed_authentication(&self, ip: IpAddr) {
        let ip = self.address_key(ip);
        if let Err(n) = self.ips.check_key(&ip) {
            let wait = n.wait_time_from(self.clock.now());
            self.penalised
                .lock()
                .expect("limits lock")
                .insert(ip, Instant::now() + wait);
        }
    }

    /// A token (its digest) authenticated: from now on it has its own limits.
    pub fn authenticated(&self, key: &TokenKey) {
        self.known
            .lock()
            .expect("limits lock")
            .insert(*key, Instant::now());
    }

    /// A token failed to authenticate (revoked, rotated): it is anonymous again.
    pub fn forget(&self, key: &TokenKey) {
        self.known.lock().expect("limits lock").remove(key);
    }

    /// Whether this token authenticated here recently.
    pub fn is_known(&self, key: &TokenKey) -> bool {
        self.known
            .lock()
            .expect("limits lock")
            .get(key)
            .is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    /// The key an address is limited by: itself for IPv4, its network for IPv6.
    pub fn address_key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => ipnet::Ipv6Net::new(v6, self.ipv6_prefix)
                    .map_or(ip, |net| IpAddr::V6(net.network())),
            },
            v4 => v4,
        }
    }

    /// One of the worker's in-flight slots, waiting briefly for one to free up.
    pub async fn enter(&self, key: &TokenKey) -> Result<OwnedSemaphorePermit, Refused> {
        let slots = {
            let mut map = self.in_flight.lock().expect("limits lock");
            map.entry(*key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.max_in_flight)))
                .clone()
        };
        match tokio::time::timeout(IN_FLIGHT_WAIT, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::InFlight),
        }
    }

    /// The peer is one of `OWP_TRUSTED_PROXIES`: its forwarding headers are believed.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not one (proxies append, so the right end is
    /// the part a trusted proxy wrote; anything left of it the client could forge).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        let Some(xff) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
        client
    }

    /// Drops state that no longer limits anyone: full buckets, idle in-flight slots,
    /// expired penalties. At most every few seconds, by whichever request comes first.
    fn housekeeping(&self) {
        let Ok(mut last) = self.last_housekeeping.try_lock() else {
            return;
        };
        if last.elapsed() < HOUSEKEEPING_EVERY {
            return;
        }
        *last = Instant::now();
        self.workers.retain_recent();
        self.workers.shrink_to_fit();
        self.ips.retain_recent();
        self.ips.shrink_to_fit();
        let now = Instant::now();
        self.penalised
            .lock()
            .expect("limits lock")
            .retain(|_, until| *until > now);
        self.known
            .lock()
            .expect("limits lock")
            .retain(|_, at| at.elapsed() < KNOWN_FOR);
        let max = self.max_in_flight;
        self.in_flight
            .lock()
            .expect("limits lock")
            .retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_cidr, Settings};

    fn limits(trusted: &[&str]) -> Limits {
        let mut l = Settings::defaults().limits;
        l.worker_rate = 1;
        l.worker_burst = 3;
        l.ip_rate = 1;
        l.ip_burst = 2;
        l.trusted_proxies = trusted.iter().map(|c| parse_cidr(c).unwrap()).collect();
        Limits::new(&l)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_over_the_limit_is_refused_with_a_wait_and_others_are_unaffected() {
        let l = limits(&[]);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for _ in 0..3 {
            assert_eq!(l.worker_request(&a), Ok(()));
        }
        let refused = l.worker_request(&a).unwrap_err();
        assert_eq!(refused.limit(), "worker");
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(l.worker_request(&b), Ok(()));
    }

    #[test]
    fn failed_authentication_penalises_the_address_once_over_its_rate() {
        let l = limits(&[]);
        let bad = ip("203.0.113.9");
        l.failed_authentication(bad);
        l.failed_authentication(bad);
        assert_eq!(l.penalty(bad), Ok(()), "within the burst");
        l.failed_authentication(bad);
        assert_eq!(l.penalty(bad).unwrap_err().limit(), "ip");
        assert!(l.anonymous_request(bad).is_err());
        assert_eq!(l.penalty(ip("203.0.113.10")), Ok(()));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let l = limits(&["10.0.0.0/8"]);
        let xff = Some("1.2.3.4, 198.51.100.7, 10.0.0.9");
        // a trusted proxy chain: the nearest untrusted hop is the client
        assert_eq!(l.client_ip(ip("10.1.1.1"), xff), ip("198.51.100.7"));
        // anyone else's header is ignored
        assert_eq!(l.client_ip(ip("198.51.100.8"), xff), ip("198.51.100.8"));
        // garbage ends the walk at the last trusted hop
        assert_eq!(
            l.client_ip(ip("10.1.1.1"), Some("junk, 10.0.0.9")),
            ip("10.0.0.9")
        );
        assert_eq!(l.client_ip(ip("10.1.1.1"), None), ip("10.1.1.1"));
    }

    #[test]
    fn ipv6_clients_are_limited_per_network_and_ipv4_per_address() {
        let l = limits(&[]);
        // one host rotating through its /64 is one client
        for host in [
            "2001:db8:1:2::1",
            "2001:db8:1:2::ffff:3",
            "2001:db8:1:2:abcd::9",
        ] {
            l.failed_authentication(ip(host));
        }
        assert_eq!(
            l.penalty(ip("2001:db8:1:2:dead::beef"))
                .unwrap_err()
                .limit(),
            "ip"
        );
        assert_eq!(
            l.penalty(ip("2001:db8:1:3::1")),
            Ok(()),
            "the next /64 is not"
        );
        assert_eq!(l.address_key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(l.address_key(ip("198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn only_tokens_that_authenticated_are_known_until_they_fail() {
        let l = limits(&[]);
        let key = [9u8; 32];
        assert!(!l.is_known(&key));
        l.authenticated(&key);
        assert!(l.is_known(&key));
        l.forget(&key);
        assert!(!l.is_known(&key));
    }

    #[tokio::test]
    async fn a_worker_has_a_few_requests_in_flight_at_most() {
        let mut s = Settings::defaults().limits;
        s.worker_max_in_flight = 2;
        let l = Limits::new(&s);
        let key = [7u8; 32];
        let one = l.enter(&key).await.unwrap();
        let _two = l.enter(&key).await.unwrap();
        assert_eq!(l.enter(&key).await.unwrap_err(), Refused::InFlight);
        drop(one);
        assert!(l.enter(&key).await.is_ok());
        assert!(
            l.enter(&[8u8; 32]).await.is_ok(),
            "another worker is unaffected"
        );
    }
}
