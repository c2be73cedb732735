//! Running the real `owp` binary as a person would: its own config directory, no
//! inherited OWP_* settings, output captured.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::process::{Child, Command};

/// A scratch directory for one test's config files and command output; removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("owp-cli-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `owp <args>` with a clean environment: XDG_CONFIG_HOME in `home`, no OWP_* variables.
pub fn owp(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_owp"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `owp <args>` to its end (at most 60 s).
pub async fn run(home: &Path, args: &[&str]) -> Output {
    let out = owp(home, args).output();
    tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("owp finished within 60 s")
        .expect("owp runs")
}

/// Runs `owp <args>`, expects success, answers stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "owp failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Expects failure; answers stderr.
#[track_caller]
pub fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "owp should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `owp <args>` in the background, its output to files under `home`.
pub fn spawn(home: &Path, name: &str, args: &[&str]) -> Child {
    let stdout = std::fs::File::create(home.join(format!("{name}.out"))).unwrap();
    let stderr = std::fs::File::create(home.join(format!("{name}.err"))).unwrap();
    owp(home, args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("owp starts")
}

pub fn signal(child: &Child, sig: i32) {
    let pid = child.id().expect("the child is running") as i32;
    // SAFETY: kill(2) on our own child's pid
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether a process still runs (a zombie does not count).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `owp admin --json import FILE EXTRA…` against the server at `base`, as its admin.
pub async fn import(home: &Path, base: &str, file: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "admin",
        "--url",
        base,
        "--admin-token",
        super::ADMIN,
        "--json",
        "import",
        file,
    ];
    args.extend_from_slice(extra);
    run(home, &args).await
}
