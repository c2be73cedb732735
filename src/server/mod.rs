//! `owp serve`: connect, migrate, bind listeners, start background services (each under
//! `AppContext::tasks`, the supervisor), and shut down gracefully. `serve_on` takes its listener and shutdown signal, so tests start real apps.

pub mod activity;
pub mod listener;
pub mod work_signals;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{pool_settings, AppContext};
use crate::auth::{self, Registration, TokenSet};
use crate::config::{Secret, ServeConfig};
use crate::domain::reputation::PromotionRule;
use crate::{http, scheduler, store};
use listener::ConnLimits;

/// How long a starting replica keeps trying to apply migrations (the database may still be
/// starting, or another replica migrating).
const MIGRATION_PATIENCE: Duration = Duration::from_secs(300);

/// Serves the API on `listener` until `shutdown` resolves, then ends the streams and lets
/// in-flight requests finish.
pub async fn serve_on(
    app: AppContext,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ConnLimits {
        header_timeout: app.settings.limits.header_timeout,
        idle_timeout: app.settings.limits.idle_timeout,
        max_connections: app.settings.limits.max_connections,
    };
    let router = http::router(app.clone());
    app.tasks
        .spawn("work_signals", work_signals::run(app.clone()));
    scheduler::start_request_services(&app);
    let stopping = async move {
        // the caller's signal, or the replica's own stop
        tokio::select! {
            () = shutdown => {}
            () = app.stopped() => {}
        }
        app.stop();
    };
    listener::serve(listener, router, limits, stopping).await;
    Ok(())
}

pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let running = start(cfg).await?;
    shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

/// A replica started by [`start`]: its address, and what [`Running::shutdown`] stops.
pub struct Running {
    pub addr: SocketAddr,
    pub app: AppContext,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown_timeout: Duration,
}

/// Connects, migrates, binds (`OWP_PORT` 0: any free port) and starts the API, the
/// scheduler election and the gauges; `owp serve` and `owp demo` share it.
pub async fn start(cfg: ServeConfig) -> anyhow::Result<Running> {
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid setting: {e}"))?;
    let admin_tokens = admin_tokens(&cfg)?;
    if let Some(rule) = &cfg.settings.promote_basic_after {
        rule.parse::<PromotionRule>()
            .map_err(|e| anyhow::anyhow!("invalid setting: OWP_PROMOTE_BASIC_AFTER: {e}"))?;
    }
    tracing::info!(config = ?cfg, "starting");
    let direct = cfg.leader_database_url();
    let direct_options: sqlx::postgres::PgConnectOptions = direct
        .expose()
        .parse()
        .context("OWP_LEADER_DATABASE_URL is not a valid PostgreSQL URL")?;
    let pool = store::connect_lazy(cfg.db.database_url.expose(), &pool_settings(&cfg.db))
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        .with_session_options(direct_options.clone());
    if cfg.auto_migrate {
        // sqlx's migrator holds a session advisory lock: never through a pooler
        store::migrations::apply_with_retry(direct.expose(), MIGRATION_PATIENCE)
            .await
            .with_context(|| format!("applying migrations to {direct}"))?;
        tracing::info!("migrations applied");
    }
    let registration = Registration::from_settings(
        cfg.registration_token.as_ref().map(Secret::expose),
        cfg.open_registration || cfg.dev,
    );
    tracing::info!(mode = registration.describe(), "worker registration");
    let app = AppContext::new(
        pool.clone(),
        cfg.settings.clone(),
        TokenSet::named(admin_tokens.iter().map(|t| t.expose())),
        registration,
    );

    let addr = SocketAddr::new(cfg.host, cfg.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let listener_addr = listener.local_addr()?;
    tracing::info!(addr = %listener_addr, replica = %app.settings.replica_id, "listening");

    if let Some(port) = cfg.settings.metrics_port {
        serve_metrics(&app, SocketAddr::new(cfg.host, port)).await?;
    }
    scheduler::start(&app, direct_options);
    let server = app.tasks.spawn(
        API_SERVER,
        serve_on(app.clone(), listener, std::future::pending()),
    );

    Ok(Running {
        addr: listener_addr,
        app,
        server,
        shutdown_timeout: cfg.shutdown_timeout,
    })
}

/// The supervisor's name for the API server task.
const API_SERVER: &str = "api_server";

impl Running {
    /// Drains in-flight requests, stops the scheduler (releasing leadership) and closes
    /// the pool, each bounded by `OWP_SHUTDOWN_TIMEOUT`.
    pub async fn shutdown(self) {
        let Running {
            app,
            server,
            shutdown_timeout,
            ..
        } = self;
        tracing::info!(timeout = ?shutdown_timeout, "shutting down: draining in-flight requests");
        // one signal stops everything; the server drains, the scheduler finishes its sweep
        // and releases leadership, the services end their loops
        let left = app.tasks.shut_down(shutdown_timeout).await;
        // the tracker counts a task done when its future is dropped, a moment before its
        // handle holds the result: `is_finished` could still say no (a flaky drain log
        // under load), so a server the tracker saw end is awaited
        if !left.contains(&API_SERVER) {
            match server.await {
                Ok(Ok(())) => tracing::info!("in-flight requests finished"),
                Ok(Err(e)) => tracing::error!(error = %e, "server error during shutdown"),
                Err(e) => tracing::error!(error = %e, "server task failed"),
            }
        }
        if !left.is_empty() {
            tracing::warn!(still_running = ?left, "shutdown timeout reached; abandoning what is still running");
        }
        app.pool.close().await;
        tracing::info!("stopped");
    }
}

/// Serves `/metrics` alone on its own listener until `stop`.
async fn serve_metrics(app: &AppContext, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %addr, "metrics listening");
    let router = http::metrics_router(app.clone());
    let limits = ConnLimits {
        header_timeout: app.settings.limits.header_timeout,
        idle_timeout: app.settings.limits.idle_timeout,
        // scrapers are few; the cap keeps a flood of them off the API's file descriptors
        max_connections: 64,
    };
    let stop = app.tasks.stop_token();
    let serving =
        async move { listener::serve(listener, router, limits, stop.cancelled_owned()).await };
    app.tasks.spawn("metrics_server", serving);
    Ok(())
}

fn admin_tokens(cfg: &ServeConfig) -> anyhow::Result<Vec<Secret>> {
    let tokens: Vec<Secret> = cfg
        .admin_token
        .iter()
        .map(|t| Secret::new(t.expose().trim()))
        .filter(|t| !t.expose().is_empty())
        .collect();
    let exposed: Vec<&str> = tokens.iter().map(Secret::expose).collect();
    auth::check_admin_entries(&exposed).map_err(|e| anyhow::anyhow!("OWP_ADMIN_TOKEN: {e}"))?;
    if !tokens.is_empty() {
        return Ok(tokens);
    }
    if !cfg.dev {
        anyhow::bail!("OWP_ADMIN_TOKEN is required (or start with --dev for local development)");
    }
    let generated = auth::generate_token();
    tracing::warn!(
        "development mode: no OWP_ADMIN_TOKEN set; using a generated admin token for this run"
    );
    // printed, not logged: the one place a token is shown, for the developer at the terminal
    eprintln!("development admin token: {generated}");
    Ok(vec![Secret::new(generated)])
}

/// Resolves on SIGTERM (Kubernetes, docker stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
