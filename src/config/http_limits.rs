//! The HTTP and per-client limits (`HttpLimits`, flattened into `Settings`), and the
//! address blocks of `OWP_TRUSTED_PROXIES`.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use super::{duration_in, in_range, HOUR, MS, SECOND};

/// What one client, one connection and one replica may use. Flattened into `Settings`.
#[derive(Clone, Debug, Args)]
pub struct HttpLimits {
    /// A client must send a request's whole header within this of its first byte (or of
    /// connecting).
    #[arg(long, env = "OWP_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A kept-alive connection with nothing in flight is closed after this. Longer than
    /// common clients' own pool idle timeout (90 s), so they close first.
    #[arg(long, env = "OWP_HTTP_IDLE_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Longest a request may run, long polls and streams excepted (they end by themselves).
    #[arg(long, env = "OWP_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Most open client connections per replica; more wait in the listen backlog.
    #[arg(long, env = "OWP_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most concurrent `/v1/admin/state/stream` streams per replica (503 beyond).
    #[arg(long, env = "OWP_SSE_MAX_STREAMS", default_value_t = 100)]
    pub sse_max_streams: usize,

    /// Requests per second one worker token may make, on average.
    #[arg(long, env = "OWP_WORKER_RATE", default_value_t = 100)]
    pub worker_rate: u32,

    /// Requests one worker token may make at once above its rate.
    #[arg(long, env = "OWP_WORKER_BURST", default_value_t = 200)]
    pub worker_burst: u32,

    /// Requests one worker may have in flight; more wait up to a second, then get 429.
    #[arg(long, env = "OWP_WORKER_MAX_IN_FLIGHT", default_value_t = 4)]
    pub worker_max_in_flight: usize,

    /// Requests per second one client address may make to unauthenticated routes, and
    /// failed authentications it may cause.
    #[arg(long, env = "OWP_IP_RATE", default_value_t = 20)]
    pub ip_rate: u32,

    /// Burst above OWP_IP_RATE (a fleet behind one NAT registering at once).
    #[arg(long, env = "OWP_IP_BURST", default_value_t = 200)]
    pub ip_burst: u32,

    /// IPv6 clients are limited per network of this prefix length (a /64 is one subscriber
    /// or host at most ISPs and clouds: an attacker can rotate through all of it).
    #[arg(long, env = "OWP_IPV6_PREFIX", default_value_t = 64)]
    pub ipv6_prefix: u8,

    /// Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed;
    /// from anyone else the header is ignored.
    #[arg(long, env = "OWP_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,
}

impl HttpLimits {
    pub(super) fn validate(&self) -> Result<(), String> {
        duration_in(
            "OWP_HTTP_HEADER_TIMEOUT",
            self.header_timeout,
            MS * 100,
            HOUR,
        )?;
        duration_in("OWP_REQUEST_TIMEOUT", self.request_timeout, SECOND, HOUR)?;
        duration_in("OWP_HTTP_IDLE_TIMEOUT", self.idle_timeout, SECOND, HOUR)?;
        in_range("OWP_MAX_CONNECTIONS", self.max_connections, 1, 1_000_000)?;
        in_range("OWP_SSE_MAX_STREAMS", self.sse_max_streams, 0, 100_000)?;
        in_range("OWP_WORKER_RATE", self.worker_rate, 1, 1_000_000)?;
        in_range("OWP_WORKER_BURST", self.worker_burst, 1, 1_000_000)?;
        in_range(
            "OWP_WORKER_MAX_IN_FLIGHT",
            self.worker_max_in_flight,
            1,
            1000,
        )?;
        in_range("OWP_IP_RATE", self.ip_rate, 1, 1_000_000)?;
        in_range("OWP_IP_BURST", self.ip_burst, 1, 1_000_000)?;
        in_range("OWP_IPV6_PREFIX", usize::from(self.ipv6_prefix), 32, 128)?;
        Ok(())
    }
}

/// An address block, `10.0.0.0/8` or a single address, for OWP_TRUSTED_PROXIES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // an IPv4 client may arrive as an IPv4-mapped IPv6 address on a dual-stack socket
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let s = s.trim();
    if s.contains('/') {
        return s
            .parse::<IpNet>()
            .map(Cidr)
            .map_err(|_| format!("not an address block (bad address or prefix length): {s}"));
    }
    s.parse::<IpAddr>()
        .map(|a| Cidr(IpNet::from(a)))
        .map_err(|_| format!("not an address or CIDR: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxy_blocks_match_their_addresses_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let block = parse_cidr("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(block.contains(ip("::ffff:10.1.0.1")));
        assert!(!block.contains(ip("10.2.0.1")));
        let one = parse_cidr("192.168.1.7").unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        assert!(parse_cidr("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(parse_cidr("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("proxy.local").is_err());
    }
}
