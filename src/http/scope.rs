//! What a repository-scoped admin token reaches (`OWP_ADMIN_TOKEN=name@owner/repo=<tok>`):
//! its repositories' settings, tasks, audit events, analytics and sync. Pool-wide routes
//! take [`AuthAdmin`], which refuses such a token; the routes here take [`RepoAdmin`] and
//! narrow what they read or change with these helpers.

use crate::app::AppContext;
use crate::error::ApiError;
use crate::http::extract::AuthAdmin;
use crate::store::tasks;

/// 404 unless the task exists and this admin's scope covers its repository: a scoped
/// admin learns nothing of other repositories' tasks, not even that they exist.
pub async fn task_in_scope(
    app: &AppContext,
    admin: &AuthAdmin,
    task_id: &str,
) -> Result<(), ApiError> {
    if admin.scope.repos().is_none() {
        return Ok(());
    }
    match tasks::repo_of(&app.pool, task_id).await? {
        Some(repo) if admin.scope.admits(&repo) => Ok(()),
        _ => Err(ApiError::NotFound("task")),
    }
}

/// The repositories a list may show: the one asked for (403 outside the scope), else the
/// scope's (`None`: every repository).
pub fn repos_filter(
    admin: &AuthAdmin,
    asked: Option<String>,
) -> Result<Option<Vec<String>>, ApiError> {
    match asked {
        Some(repo) => {
            admin.may(&repo)?;
            Ok(Some(vec![repo]))
        }
        None => Ok(admin.scope.repos().map(<[String]>::to_vec)),
    }
}
