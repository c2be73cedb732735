//! `owp admin notify`: the pool's notification channels and their deliveries.

use clap::{Args, Subcommand};

use super::{done, output};
use crate::client::Client;
use crate::wire::notify::ChannelRequest;

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Make a channel; prints the secret its deliveries are signed with (shown once).
    Add(ChannelArgs),
    /// The channels, with pending and given-up deliveries.
    List,
    /// Remove a channel and what it had still to deliver.
    Remove { channel_id: String },
    /// Send a channel a test notification.
    Test { channel_id: String },
    /// Deliveries: pending, failed (given up) or delivered.
    Deliveries {
        #[arg(long, default_value = "failed")]
        state: String,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Try a given-up delivery again.
    Retry { delivery_id: i64 },
}

#[derive(Args)]
pub struct ChannelArgs {
    /// A name for people (unique).
    #[arg(long)]
    pub name: String,
    /// webhook (signed JSON), slack or discord.
    #[arg(long, default_value = "webhook")]
    pub kind: String,
    /// The receiver's URL (https). Not `--url`: that is the pool's.
    #[arg(long)]
    pub webhook_url: String,
    /// task_failed, pr_stale, write_back_gave_up, worker_revoked, budget_full
    /// (repeat, or comma-separated).
    #[arg(long = "event", required = true, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Only this repository's events.
    #[arg(long)]
    pub repo: Option<String>,
}

pub async fn run(client: &Client, c: NotifyCommand, json: bool) -> anyhow::Result<()> {
    match c {
        NotifyCommand::Add(a) => {
            let req = ChannelRequest {
                name: a.name,
                kind: a.kind,
                url: a.webhook_url,
                events: a.events,
                repo: a.repo,
            };
            let made = client.create_channel(&req).await?;
            done(json, &made, || {
                format!(
                    "channel {} ({}) made\nsigning secret (shown once): {}",
                    made.channel.id, made.channel.name, made.secret
                )
            })
        }
        NotifyCommand::List => {
            let list = client.list_channels().await?;
            if json {
                return output::json(&list);
            }
            let mut t = output::Table::new(&[
                "id", "name", "kind", "url", "repo", "events", "pending", "failed",
            ]);
            for c in &list.channels {
                t.row(vec![
                    c.id.clone(),
                    c.name.clone(),
                    c.kind.clone(),
                    c.url.clone(),
                    output::opt(&c.repo),
                    c.events.join(","),
                    c.pending.to_string(),
                    c.failed.to_string(),
                ]);
            }
            t.print();
            Ok(())
        }
        NotifyCommand::Remove { channel_id } => {
            client.delete_channel(&channel_id).await?;
            done(
                json,
                serde_json::json!({"channel_id": channel_id, "removed": true}),
                || format!("channel {channel_id} removed"),
            )
        }
        NotifyCommand::Test { channel_id } => {
            let q = client.test_channel(&channel_id).await?;
            done(json, &q, || {
                format!("test notification {} queued", q.delivery_id)
            })
        }
        NotifyCommand::Deliveries {
            state,
            channel,
            limit,
        } => deliveries(client, &state, channel.as_deref(), limit, json).await,
        NotifyCommand::Retry { delivery_id } => {
            let q = client.retry_delivery(delivery_id).await?;
            done(json, &q, || {
                format!("delivery {} queued again", q.delivery_id)
            })
        }
    }
}

async fn deliveries(
    client: &Client,
    state: &str,
    channel: Option<&str>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let list = client.list_deliveries(state, channel, limit).await?;
    if json {
        return output::json(&list);
    }
    let mut t = output::Table::new(&[
        "id",
        "channel",
        "event",
        "attempts",
        "created",
        "last error",
        "summary",
    ]);
    for d in &list.deliveries {
        t.row(vec![
            d.id.to_string(),
            d.channel_id.clone(),
            d.event.clone(),
            d.attempts.to_string(),
            output::time(&d.created_at),
            output::opt(&d.last_error),
            d.summary.clone(),
        ]);
    }
    t.print();
    Ok(())
}
