//! The database goes away under a running app: 503 `unavailable` quickly, liveness stays up,
//! and the app recovers by itself when the database returns. Uses a PostgreSQL instance
//! this test owns (initdb into a temp dir, own port), never the shared one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use owp_pool::store::{self, PoolSettings};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql (scripts/test.sh installs them)",
        )
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb binary")
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (the server refuses root).
fn run_pg(bin: &Path, tool: &str, args: &[&str]) {
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl OwnPostgres {
    fn init() -> Self {
        let bin = pg_bin();
        let dir =
            std::env::temp_dir().join(format!("owp-pg-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status();
        let data = dir.join("data");
        run_pg(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = OwnPostgres { bin, dir, port };
        pg.start();
        pg
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        run_pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        run_pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000
}

#[tokio::test]
async fn a_database_outage_answers_503_and_heals_by_itself() {
    let pg = OwnPostgres::init();
    let settings = PoolSettings {
        max_connections: 5,
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(5),
    };
    let pool = store::connect_lazy(&pg.url(), &settings).unwrap();
    store::MIGRATOR.run(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let w = app.register("survivor", &[], 5, 2).await;
    app.create_repo("r", 3, false).await;

    pg.stop();
    let started = Instant::now();
    app.as_worker(&w, Method::POST, "/v1/workers/heartbeat", Some(json!({})))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let took = started.elapsed();
    let poll = app.as_worker(&w, Method::GET, "/v1/work", None).await;
    assert_eq!(poll.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(poll.body["suggestion"].as_str().unwrap().contains("retry"));
    app.call(Method::GET, "/healthz", &[], None)
        .await
        .expect(StatusCode::OK);
    app.call(Method::GET, "/readyz", &[], None)
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    app.admin(Method::POST, "/v1/admin/repos", Some(json!({"repo": "x"})))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metrics.status(),
        StatusCode::OK,
        "metrics still served while the database is down"
    );
    assert!(metrics.text().await.unwrap().contains("owp_db_up 0"));

    pg.start();
    let back = Instant::now();
    loop {
        let a = app
            .as_worker(&w, Method::POST, "/v1/workers/heartbeat", Some(json!({})))
            .await;
        if a.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            a.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "only 503 while recovering: {:?}",
            a.body
        );
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "the app did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.call(Method::GET, "/readyz", &[], None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.state().await["workers_total"], 1, "nothing was lost");
    println!(
        "database down: first answer 503 after {took:?}; recovered {:?} after restart",
        back.elapsed()
    );
}
