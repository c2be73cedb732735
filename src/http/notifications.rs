//! Notification channels (`/v1/admin/notifications`): make, list, remove and test them,
//! and see their deliveries (pending, given up, delivered) and try a given-up one again.
//! A repository-scoped admin manages its own repositories' channels only; pool-wide
//! channels, and other repositories', do not exist for it (404).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::app::AppContext;
use crate::domain::ids::ChannelId;
use crate::domain::{input, notify};
use crate::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, AuthAdmin, RepoAdmin};
use crate::store::notifications::{self as store, Created, NewChannel};
use crate::wire::notify::{
    Channel, ChannelCreated, ChannelList, ChannelRequest, Delivery, DeliveryList, DeliveryQuery,
    DeliveryQueued,
};
use crate::wire::ErrorBody;

/// Make a channel: the pool tells it about the events it names (PROTOCOL.md
/// "Notifications"). The answer carries the signing secret, shown only this once.
#[utoipa::path(post, path = "/v1/admin/notifications", tag = "notifications", request_body = ChannelRequest,
    security(("admin" = [])),
    responses((status = 201, body = ChannelCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "a scoped token's channel must name one of its repositories", body = ErrorBody),
              (status = 404, description = "the repo is not in the pool", body = ErrorBody),
              (status = 409, description = "details: name_taken", body = ErrorBody)))]
pub async fn create_channel(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiJson(req): ApiJson<ChannelRequest>,
) -> Result<(StatusCode, Json<ChannelCreated>), ApiError> {
    let name = input::text("name", &req.name, 1, 100)?;
    if notify::Kind::parse(&req.kind).is_none() {
        return Err(ApiError::Validation(
            "kind: webhook, slack or discord".into(),
        ));
    }
    let url = input::text("url", &req.url, 1, 2000)?;
    notify::check_url(&url, app.settings.notify.notify_allow_private)
        .map_err(|why| ApiError::Validation(format!("url: {why}")))?;
    let mut events = req.events.clone();
    events.sort();
    events.dedup();
    let repo = req
        .repo
        .as_deref()
        .map(|r| input::text("repo", r, 1, 200))
        .transpose()?;
    notify::check_events(&events, repo.is_some())
        .map_err(|why| ApiError::Validation(format!("events: {why}")))?;
    match &repo {
        Some(r) => admin.may(r)?,
        None if admin.scope.repos().is_some() => {
            return Err(ApiError::Forbidden(
                "a repository-scoped token's channel must name one of its repositories",
            ))
        }
        None => {}
    }
    let (id, secret) = (ChannelId::generate(), crate::auth::generate_token());
    let new = NewChannel {
        id: &id,
        name: &name,
        kind: &req.kind,
        url: &url,
        secret: &secret,
        events: &events,
        repo: repo.as_deref(),
    };
    match store::create_channel(&app.pool, &new, &admin.actor).await? {
        Created::Done => {}
        Created::NameTaken => return Err(ApiError::Conflict("name_taken")),
        Created::UnknownRepo => return Err(ApiError::NotFound("repository")),
    }
    let channel = channel_in_view(&app, &admin, &id)
        .await?
        .ok_or(ApiError::NotFound("channel"))?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelCreated { channel, secret }),
    ))
}

/// The channels this admin manages, with how their deliveries stand.
#[utoipa::path(get, path = "/v1/admin/notifications", tag = "notifications", security(("admin" = [])),
    responses((status = 200, body = ChannelList), (status = 401, body = ErrorBody)))]
pub async fn list_channels(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
) -> Result<Json<ChannelList>, ApiError> {
    let rows = store::list_channels(&app.pool, admin.scope.repos(), None).await?;
    Ok(Json(ChannelList {
        channels: rows.into_iter().map(channel_view).collect(),
    }))
}

/// Remove a channel, and what it had still to deliver.
#[utoipa::path(delete, path = "/v1/admin/notifications/{channel_id}", tag = "notifications", security(("admin" = [])),
    params(("channel_id" = String, Path, description = "The channel's id")),
    responses((status = 204, description = "removed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_channel(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    channel_in_scope(&app, &admin, &id).await?;
    if !store::delete_channel(&app.pool, &id, &admin.actor).await? {
        return Err(ApiError::NotFound("channel"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Send the channel a `test` notification (delivered by the leader, as any other).
#[utoipa::path(post, path = "/v1/admin/notifications/{channel_id}/test", tag = "notifications", security(("admin" = [])),
    params(("channel_id" = String, Path, description = "The channel's id")),
    responses((status = 202, body = DeliveryQueued), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_channel(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryQueued>), ApiError> {
    channel_in_scope(&app, &admin, &id).await?;
    let delivery_id = store::enqueue_test(&app.pool, &id, &admin.actor).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryQueued { delivery_id })))
}

/// Deliveries by state: `pending`, `failed` (given up, with the receiver's last answer)
/// or `delivered`; newest first.
#[utoipa::path(get, path = "/v1/admin/notifications/deliveries", tag = "notifications", security(("admin" = [])),
    params(DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_deliveries(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let state = q.state.as_deref().unwrap_or("pending");
    if !matches!(state, "pending" | "failed" | "delivered") {
        return Err(ApiError::Validation(
            "state: pending, failed or delivered".into(),
        ));
    }
    let limit = input::int_in("limit", q.limit, 100, 1, 500)?;
    let rows = store::list_deliveries(
        &app.pool,
        state,
        q.channel.as_deref(),
        admin.scope.repos(),
        i64::from(limit),
    )
    .await?;
    let deliveries = rows
        .into_iter()
        .map(|r| Delivery {
            summary: notify::summary(&r.event, &r.facts),
            next_attempt_at: (r.delivered_at.is_none() && r.gave_up_at.is_none())
                .then_some(r.next_attempt_at),
            id: r.id,
            channel_id: r.channel_id,
            event: r.event,
            repo: r.repo,
            attempts: r.attempts,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
            gave_up_at: r.gave_up_at,
            last_error: r.last_error,
        })
        .collect();
    Ok(Json(DeliveryList { deliveries }))
}

/// Try a given-up delivery again, from its first try.
#[utoipa::path(post, path = "/v1/admin/notifications/deliveries/{delivery_id}/retry", tag = "notifications",
    security(("admin" = [])),
    params(("delivery_id" = i64, Path, description = "The delivery's id")),
    responses((status = 202, body = DeliveryQueued), (status = 401, body = ErrorBody),
              (status = 404, description = "no given-up delivery with this id", body = ErrorBody)))]
pub async fn retry_delivery(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryQueued>), ApiError> {
    let delivery_id: i64 = id.parse().map_err(|_| ApiError::NotFound("delivery"))?;
    if !store::redeliver(&app.pool, delivery_id, admin.scope.repos()).await? {
        return Err(ApiError::NotFound("delivery"));
    }
    Ok((StatusCode::ACCEPTED, Json(DeliveryQueued { delivery_id })))
}

/// 404 unless the channel exists and this admin manages it.
async fn channel_in_scope(app: &AppContext, admin: &AuthAdmin, id: &str) -> Result<(), ApiError> {
    match store::channel_repo(&app.pool, id).await? {
        Some(_) if admin.scope.repos().is_none() => Ok(()),
        Some(Some(repo)) if admin.scope.admits(&repo) => Ok(()),
        _ => Err(ApiError::NotFound("channel")),
    }
}

async fn channel_in_view(
    app: &AppContext,
    admin: &AuthAdmin,
    id: &str,
) -> Result<Option<Channel>, ApiError> {
    let rows = store::list_channels(&app.pool, admin.scope.repos(), Some(id)).await?;
    Ok(rows.into_iter().next().map(channel_view))
}

fn channel_view(c: Channel) -> Channel {
    Channel {
        url: redacted(&c.url),
        ..c
    }
}

/// Scheme and host only: the rest of a Slack or Discord URL is its credential.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or("?"))
        }
        Err(_) => "…".into(),
    }
}
