//! One lease's shell command: started in its own process group with the task in its
//! environment and as JSON on stdin; its output echoed (prefixed with the task id) and its
//! tail kept for a failure message. The PR it opened is what it writes into the file
//! `$OWP_PR_URL_FILE` (a directory of its own, 0700): not a line of its output, which an
//! agent echoing a stranger's issue text could forge. It never sees the pool's tokens in its
//! environment. Ending it ends the whole group, so the tools it started go too.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::wire::work::Lease;

/// Lines of output kept for the failure message.
const TAIL_LINES: usize = 30;
/// The protocol's limit on a report's message.
pub const MAX_MESSAGE: usize = 2_000;
/// After SIGTERM, how long the group has before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// What a finished command said.
#[derive(Debug)]
pub struct Exit {
    pub success: bool,
    /// `exit code 3` or `killed by signal 9`.
    pub how: String,
    pub pr_url: Option<String>,
    /// The last lines of stdout and stderr together.
    pub tail: String,
}

#[derive(Default)]
struct Captured {
    tail: VecDeque<String>,
}

/// Variables a command must not inherit from the worker: the pool's credentials and where
/// they are kept.
const WITHHELD_ENV: &[&str] = &[
    "OWP_ADMIN_TOKEN",
    "OWP_REGISTRATION_TOKEN",
    "OWP_WORKER_CONFIG",
    "OWP_ADMIN_CONFIG",
];

/// The longest PR link read from `$OWP_PR_URL_FILE`.
const MAX_PR_URL: u64 = 4096;

/// A private directory for one command's result file, removed with it.
struct ResultDir(std::path::PathBuf);

impl ResultDir {
    fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("owp-{}", uuid::Uuid::now_v7().simple()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Self(dir))
    }

    fn pr_url_file(&self) -> std::path::PathBuf {
        self.0.join("pr_url")
    }

    /// The first line of the result file, if the command wrote one.
    fn pr_url(&self) -> Option<String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(self.pr_url_file())
            .ok()?
            .take(MAX_PR_URL)
            .read_to_string(&mut text)
            .ok()?;
        let url = text.lines().next()?.trim();
        (!url.is_empty()).then(|| url.to_string())
    }
}

impl Drop for ResultDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Process {
    result: ResultDir,
    child: Child,
    pgid: Option<i32>,
    captured: Arc<Mutex<Captured>>,
    readers: Vec<JoinHandle<()>>,
}

/// The environment a command sees: the task's fields as `OWP_*` variables.
pub fn task_env(lease: &Lease, worker_id: &str, url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OWP_TASK_ID", lease.task_id.clone()),
        ("OWP_LEASE_ID", lease.lease_id.clone()),
        ("OWP_REPO", lease.repo.clone()),
        ("OWP_TITLE", lease.title.clone()),
        ("OWP_DESCRIPTION", lease.description.clone()),
        ("OWP_AREA", lease.area.clone().unwrap_or_default()),
        ("OWP_SKILLS", lease.required_skills.join(",")),
        ("OWP_ESTIMATE_POINTS", lease.estimate_points.to_string()),
        ("OWP_PRIORITY", lease.priority.to_string()),
        ("OWP_TIER", lease.tier.to_string()),
        ("OWP_ATTEMPT", lease.attempt.to_string()),
        ("OWP_LEASE_EXPIRES_AT", lease.lease_expires_at.to_rfc3339()),
        ("OWP_WORKER_ID", worker_id.to_string()),
        ("OWP_URL", url.to_string()),
    ]
}

impl Process {
    /// Starts `sh -c cmd` for `lease`.
    pub fn spawn(
        cmd: &str,
        lease: &Lease,
        env: Vec<(&'static str, String)>,
    ) -> std::io::Result<Self> {
        let result = ResultDir::new()?;
        let mut command = Command::new("sh");
        for name in WITHHELD_ENV {
            command.env_remove(name);
        }
        let mut child = command
            .arg("-c")
            .arg(cmd)
            .envs(env)
            .env("OWP_PR_URL_FILE", result.pr_url_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // its own group: ending the lease ends everything the command started
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let captured = Arc::new(Mutex::new(Captured::default()));
        let mut readers = vec![];
        if let Some(stdout) = child.stdout.take() {
            readers.push(read_lines(stdout, lease.task_id.clone(), captured.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(read_lines(stderr, lease.task_id.clone(), captured.clone()));
        }
        if let Some(mut stdin) = child.stdin.take() {
            let task = serde_json::to_vec(lease).unwrap_or_default();
            // a command that never reads stdin must not block: write in the background
            tokio::spawn(async move {
                let _ = stdin.write_all(&task).await;
                let _ = stdin.write_all(b"\n").await;
            });
        }
        Ok(Self {
            result,
            child,
            pgid,
            captured,
            readers,
        })
    }

    /// Waits for the command to end (cancel-safe) and collects what it said.
    pub async fn wait(&mut self) -> std::io::Result<Exit> {
        let status = self.child.wait().await?;
        // output still in the pipes; a background child holding them open must not hang us
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
        }
        let captured = self.captured.lock().expect("output lock");
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "ended".to_string(),
        };
        Ok(Exit {
            success: status.success(),
            how,
            pr_url: self.result.pr_url(),
            tail: tail_text(&captured.tail),
        })
    }

    /// Ends the command's whole group: SIGTERM, then SIGKILL after a short grace.
    pub async fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal_group(libc::SIGTERM);
        if tokio::time::timeout(TERM_GRACE, self.child.wait())
            .await
            .is_err()
        {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait().await;
        }
        // the group may outlive its leader
        self.signal_group(libc::SIGKILL);
    }

    fn signal_group(&self, signal: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // touched. The group is the command's own (process_group(0) at spawn).
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // dropped while running (the worker is going away): take the group down with it
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.signal_group(libc::SIGKILL);
        }
    }
}

fn read_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    task_id: String,
    captured: Arc<Mutex<Captured>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{task_id}] {line}");
            let mut c = captured.lock().expect("output lock");
            if c.tail.len() == TAIL_LINES {
                c.tail.pop_front();
            }
            c.tail.push_back(line);
        }
    })
}

/// The tail, cut from the front to fit a report's message with room for a prefix.
fn tail_text(lines: &VecDeque<String>) -> String {
    let text = lines.iter().cloned().collect::<Vec<_>>().join("\n");
    let room = MAX_MESSAGE - 200;
    let n = text.chars().count();
    if n <= room {
        return text;
    }
    let mut out = String::from("…");
    out.extend(text.chars().skip(n - room + 1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_keeps_its_end_within_the_message_limit() {
        let lines: VecDeque<String> = (0..30)
            .map(|i| format!("{i}: {}", "y".repeat(200)))
            .collect();
        let t = tail_text(&lines);
        assert!(t.chars().count() <= MAX_MESSAGE - 200);
        assert!(t.starts_with('…') && t.ends_with(&"y".repeat(10)));
        assert!(t.contains("29: "));
    }
}
