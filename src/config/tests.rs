//! The settings' parsers and checks.

use super::*;

#[test]
fn sizes_parse_in_bytes_and_binary_units() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert!(parse_size("12 parsecs").is_err());
    assert!(parse_size("").is_err());
}

#[test]
fn debug_output_never_shows_secrets() {
    use clap::Parser;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: ServeConfig,
    }
    let t = T::parse_from([
        "t",
        "--database-url",
        "postgres://owp:hunter2@db/owp",
        "--leader-database-url",
        "postgres://leader:hunter3@db/owp",
        "--admin-token",
        "sekrit-a,sekrit-b",
        "--registration-token",
        "sekrit-c",
    ]);
    let shown = format!("{:?}", t.c);
    assert!(
        !shown.contains("hunter") && !shown.contains("sekrit"),
        "{shown}"
    );
    // every setting is in the output: Debug is derived, so none can be left out
    for field in [
        "lease_ttl",
        "gauges_interval",
        "body_limit",
        "db_statement_timeout",
    ] {
        assert!(shown.contains(field), "{field} missing from {shown}");
    }
    assert_eq!(t.c.admin_token.len(), 2);
    assert_eq!(t.c.port, 8787);
    assert_eq!(t.c.settings.lease_ttl, Duration::from_secs(4 * 3600));
}

#[test]
fn defaults_come_from_the_flag_definitions() {
    let s = Settings::defaults();
    assert_eq!(s.lease_ttl, Duration::from_secs(4 * 3600));
    assert_eq!(s.heartbeat_timeout, Duration::from_secs(300));
    assert_eq!(s.lease_expiry_interval(), Duration::from_secs(5));
    assert_eq!(s.body_limit, 64 * 1024);
    assert!(!s.replica_id.is_empty());
}

#[test]
fn nonsense_settings_are_refused_naming_the_setting() {
    assert_eq!(Settings::defaults().validate(), Ok(()));
    let refused = |s: Settings, name: &str| {
        let e = s.validate().unwrap_err();
        assert!(e.contains(name), "{e}");
    };
    let zero = Settings {
        sweep_interval: Duration::ZERO,
        ..Settings::defaults()
    };
    refused(zero, "OWP_SWEEP_INTERVAL");
    let huge = Settings {
        lease_ttl: Duration::from_secs(1000 * 365 * 24 * 3600),
        ..Settings::defaults()
    };
    refused(huge, "OWP_LEASE_TTL");
    let deaf = Settings {
        heartbeat_timeout: Duration::from_secs(30),
        ..Settings::defaults()
    };
    refused(deaf, "OWP_HEARTBEAT_TIMEOUT");
    let tiny = Settings {
        body_limit: 10,
        ..Settings::defaults()
    };
    refused(tiny, "OWP_BODY_LIMIT");
    let expiry = Settings {
        lease_expiry_interval: Some(Duration::ZERO),
        ..Settings::defaults()
    };
    refused(expiry, "OWP_LEASE_EXPIRY_INTERVAL");
    let mut no_batch = Settings::defaults();
    no_batch.reports.report_batch = 0;
    refused(no_batch, "OWP_REPORT_BATCH");
    let mut no_queue = Settings::defaults();
    no_queue.reports.report_queue = 0;
    refused(no_queue, "OWP_REPORT_QUEUE");
}

#[test]
fn cors_origins_must_be_origins() {
    let with = |o: &str| Settings {
        cors_origins: vec![o.into()],
        ..Settings::defaults()
    };
    assert_eq!(with("https://pool.example.org").validate(), Ok(()));
    assert_eq!(with("http://localhost:5173").validate(), Ok(()));
    for bad in ["*", "pool.example.org", "https://x.org/app", "ftp://x.org"] {
        let e = with(bad).validate().unwrap_err();
        assert!(e.contains("OWP_CORS_ORIGINS"), "{bad}: {e}");
    }
}

#[test]
fn trust_tiers_read_by_name_or_level() {
    assert_eq!(parse_trust_level("untrusted"), Ok(0));
    assert_eq!(parse_trust_level("Trusted"), Ok(2));
    assert_eq!(parse_trust_level("3"), Ok(3));
    assert!(parse_trust_level("4").is_err() && parse_trust_level("root").is_err());
    assert_eq!(Settings::defaults().default_trust_tier, 0);
}

#[test]
fn urls_lose_their_password() {
    assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
    assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
}
