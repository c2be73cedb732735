//! `owp serve`: connect, migrate, bind listeners, start background services, and shut down
//! gracefully. `serve_on` takes its listener and shutdown signal, so tests start real apps.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{AppState, Settings};
use crate::auth::{self, Secrets};
use crate::config::{redact_url, ServeConfig};
use crate::{http, store};

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve_on(
    app: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let admin_tokens = admin_tokens(&cfg)?;
    tracing::info!(config = ?cfg, "starting");
    let pool = store::connect_lazy(&cfg.db.database_url, &cfg.db.pool_settings())
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    if cfg.auto_migrate {
        migrate_with_retry(&pool, &redact_url(&cfg.db.database_url)).await?;
    }
    let registration = cfg.registration_token.as_ref().map(|t| Secrets::new([t]));
    let app = AppState::new(
        pool.clone(),
        Settings::from(&cfg),
        Secrets::new(&admin_tokens),
        registration,
    );

    let addr = SocketAddr::new(cfg.host, cfg.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, replica = %app.settings.replica_id, "listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut metrics_server = None;
    if let Some(port) = cfg.metrics_port {
        let maddr = SocketAddr::new(cfg.host, port);
        let ml = TcpListener::bind(maddr)
            .await
            .with_context(|| format!("cannot listen on {maddr}"))?;
        tracing::info!(addr = %maddr, "metrics listening");
        let router = http::metrics_router(app.clone());
        let rx = stop_rx.clone();
        metrics_server = Some(tokio::spawn(async move {
            axum::serve(ml, router)
                .with_graceful_shutdown(stopped(rx))
                .await
        }));
    }
    let leader_db: sqlx::postgres::PgConnectOptions = cfg
        .leader_database_url()
        .parse()
        .context("OWP_LEADER_DATABASE_URL is not a valid PostgreSQL URL")?;
    let scheduler = crate::scheduler::spawn(app.clone(), leader_db, stop_rx.clone());
    let server = tokio::spawn(serve_on(app.clone(), listener, stopped(stop_rx)));

    shutdown_signal().await;
    tracing::info!(timeout = ?cfg.shutdown_timeout, "shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(cfg.shutdown_timeout, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("in-flight requests finished"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error during shutdown"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("shutdown timeout reached; abandoning in-flight requests"),
    }
    // the scheduler finishes its sweep and releases leadership, bounded by the same timeout
    if tokio::time::timeout(cfg.shutdown_timeout, scheduler)
        .await
        .is_err()
    {
        tracing::warn!("scheduler did not stop in time");
    }
    if let Some(m) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(2), m).await;
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn admin_tokens(cfg: &ServeConfig) -> anyhow::Result<Vec<String>> {
    let tokens: Vec<String> = cfg
        .admin_token
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
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
    Ok(vec![generated])
}

/// Applies migrations, waiting for the database to come up (a pod may start before it).
async fn migrate_with_retry(pool: &sqlx::PgPool, shown_url: &str) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(250);
    for attempt in 1..=10 {
        match store::MIGRATOR.run(pool).await {
            Ok(()) => {
                tracing::info!("migrations applied");
                return Ok(());
            }
            Err(sqlx::migrate::MigrateError::Execute(e))
                if attempt < 10 && is_connect_error(&e) =>
            {
                tracing::warn!(db = %shown_url, error = %e, attempt, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("applying migrations"),
        }
    }
    unreachable!("the last attempt returns")
}

fn is_connect_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03 cannot_connect_now: the server is starting up
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
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
