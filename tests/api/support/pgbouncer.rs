//! A real PgBouncer (Debian's package; `scripts/test.sh` installs it) in transaction mode in
//! front of the shared PostgreSQL, owned by one test: its own config, port and process.
//! Few server connections for many clients, so every server session is handed from client
//! to client all the time, which is what breaks a client that assumes a session.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgBouncer {
    dir: PathBuf,
    pub port: u16,
    child: Child,
}

fn binary() -> PathBuf {
    let sbin = Path::new("/usr/sbin/pgbouncer");
    if sbin.exists() {
        sbin.into()
    } else {
        "pgbouncer".into()
    }
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode with `server_connections` server connections
    /// per database, in front of the tests' PostgreSQL (`DATABASE_URL`'s host and port).
    pub fn start(server_connections: u32) -> Self {
        Self::start_for(
            &std::env::var("DATABASE_URL").expect("DATABASE_URL is set"),
            server_connections,
        )
    }

    /// The same in front of the PostgreSQL that `upstream` (a URL) names, for its user.
    pub fn start_for(upstream: &str, server_connections: u32) -> Self {
        let upstream = url::Url::parse(upstream).unwrap();
        let (user, password) = (upstream.username(), upstream.password().unwrap_or(""));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("owp-pgbouncer-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("users.txt"),
            format!("\"{user}\" \"{password}\"\n"),
        )
        .unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={upstream_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {server_connections}\n\
             max_client_conn = 1000\n\
             ; sqlx sends it; PgBouncer does not track it\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n\
             log_connections = 0\n\
             log_disconnections = 0\n",
            host = upstream.host_str().unwrap(),
            upstream_port = upstream.port().unwrap_or(5432),
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        let mut cmd = Command::new(binary());
        // PgBouncer refuses to run as root; `-u` switches user in its own process, so
        // killing the child stops it
        if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres", dir.to_str().unwrap()])
                .status();
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer starts (scripts/test.sh installs Debian's package)");
        let bouncer = PgBouncer { dir, port, child };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer listens within 10 s: {}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// `direct` (a PostgreSQL URL) with PgBouncer's host and port instead.
    pub fn url(&self, direct: &str) -> String {
        let mut url = url::Url::parse(direct).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
