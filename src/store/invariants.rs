//! The invariant checker: reads one consistent snapshot of the database and the audit log
//! and lists every violation of I1-I7 it can see. Used by the tests (also while they run,
//! to catch transient violations) and by `owp bench`. The checks are one statement, in
//! `invariants.sql` next to this file: one row per offending task, lease, worker or repo.

use sqlx::PgPool;

/// Violations found, each a short sentence naming the invariant and the rows.
pub async fn check(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // one snapshot for every check: they see a single committed state
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    // the statement's estimates are large on tables nobody analysed yet (a benchmark's
    // fresh database): JIT would compile for seconds what runs in milliseconds
    sqlx::query!("set local jit = off")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_file!("src/store/invariants.sql")
        .fetch_all(&mut *tx)
        .await?;
    super::commit(tx).await?;
    // one sentence per invariant, listing its rows, in the file's order
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for r in rows {
        let (Some(label), Some(item)) = (r.label, r.item) else {
            continue;
        };
        match found.iter_mut().find(|(l, _)| *l == label) {
            Some((_, items)) => items.push(item),
            None => found.push((label, vec![item])),
        }
    }
    Ok(found
        .into_iter()
        .map(|(label, items)| format!("{label}: {}", items.join(", ")))
        .collect())
}
