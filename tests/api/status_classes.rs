//! The rules SQL needs from the domain are written once in each language and checked
//! against each other here: every status class function (migration `status_classes`)
//! against `TaskStatus`, the write-back event set against `github_writeback::Event`, and
//! the issue-key format against `github_issue::parse_external_id`.

use owp_pool::domain::github_issue::parse_external_id;
use owp_pool::domain::github_writeback::Event;
use owp_pool::domain::status::TaskStatus;
use sqlx::PgPool;

#[sqlx::test]
async fn every_sql_status_class_agrees_with_the_domain_for_every_status(pool: PgPool) {
    for (function, in_class) in TaskStatus::SQL_CLASSES {
        for status in TaskStatus::ALL {
            let sql: bool = sqlx::query_scalar(&format!("select {function}($1)"))
                .bind(status.as_str())
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(sql, in_class(status), "{function}('{}')", status.as_str());
        }
    }
    for status in TaskStatus::ALL {
        let sql: bool = sqlx::query_scalar("select github_writeback_event($1)")
            .bind(status.as_str())
            .fetch_one(&pool)
            .await
            .unwrap();
        let domain = Event::parse(status.as_str()).is_some();
        assert_eq!(sql, domain, "github_writeback_event('{}')", status.as_str());
    }
}

#[sqlx::test]
async fn sql_and_the_domain_read_the_same_issue_keys(pool: PgPool) {
    let samples = [
        "github:acme/widgets#42",
        "github:acme/widgets#0",
        "github:a-b.c/d_e#7",
        "github:acme#42",
        "github:acme/widgets/x#42",
        "github:acme//widgets#42",
        "github:/widgets#42",
        "github:acme/#42",
        "github:acme/wid#gets#42",
        "github:acme/widgets#",
        "github:acme/widgets#+42",
        "github:acme/widgets#-1",
        "github:acme/widgets#4 2",
        "github:acme/widgets#123456789012345678",
        "github:acme/widgets#1234567890123456789",
        "github:acme/widgets#99999999999999999999",
        "gitlab:acme/widgets#42",
        "github:acme/widgets#42\n",
        "",
    ];
    for id in samples {
        let sql: Option<Vec<String>> = sqlx::query_scalar("select github_issue_key($1)")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        let sql = sql.map(|k| (k[0].clone(), k[1].parse::<u64>().unwrap()));
        let domain = parse_external_id(id).map(|(r, n)| (r.to_string(), n));
        assert_eq!(sql, domain, "{id:?}");
    }
}
