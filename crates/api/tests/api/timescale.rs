//! TimescaleDB and plain PostgreSQL answer alike: the same fixture, agreement and requests on
//! a store of each give identical bodies for the governed aggregates
//! (`/api/v1/shared/{grantor}/aggregates`) and the tenant's own buckets
//! (`/api/v1/readings/buckets`), before and after the continuous aggregates are refreshed.
//! Skipped with a notice when the server lacks TimescaleDB (CI's does: that is expected).

use super::governance::{aggregate_agreement, create, fixture, Fixture, HOUR_US, METRIC};
use super::*;

/// A started harness of each (TimescaleDB first) with the governance fixture on the same
/// hours; `None` when TimescaleDB or PostgreSQL is not available.
async fn pair() -> Result<Option<[(Harness, Fixture); 2]>> {
    // Both fixtures start from the current hour: start again if it changed in between.
    for _ in 0..2 {
        let mut pair = Vec::new();
        for backend in [Backend::Timescale, Backend::Postgres] {
            let Some(database) = TestDatabase::create(backend).await? else {
                return Ok(None);
            };
            let h = Harness::start_on(database, LiveConfig::default(), DashboardConfig::default())
                .await?;
            let f = fixture(&h).await?;
            pair.push((h, f));
        }
        if let [(g, a), (h, b)] = &pair[..] {
            if a.base == b.base && g.t0 == h.t0 {
                return Ok(pair.try_into().ok());
            }
        }
        for (h, _) in pair {
            h.stop().await?;
        }
    }
    anyhow::bail!("the hour changed twice while the fixtures were written")
}

/// Status and body of `path` on both harnesses, which must be equal; the body.
async fn same_answer(pair: &[(Harness, Fixture); 2], path: &str, token: Token) -> Result<Value> {
    let mut answers = Vec::new();
    for (h, f) in pair {
        let token = match token {
            Token::Partner => f.partner_token.clone(),
            Token::Viewer => h.tokens.a_viewer.clone(),
        };
        let response = h.get(path, &token).await?;
        answers.push((response.status, response.json()));
    }
    let [timescale, postgres] = <[(StatusCode, Value); 2]>::try_from(answers)
        .map_err(|_| anyhow::anyhow!("two answers"))?;
    assert_eq!(timescale, postgres, "{path}: TimescaleDB, then PostgreSQL");
    assert_eq!(timescale.0, StatusCode::OK, "{path}: {}", timescale.1);
    Ok(timescale.1)
}

/// Whose token a request carries.
#[derive(Clone, Copy)]
enum Token {
    Partner,
    Viewer,
}

#[tokio::test]
async fn aggregates_are_identical_on_timescale_and_postgres() -> Result<()> {
    let Some(pair) = pair().await? else {
        return Ok(());
    };
    for (h, _) in &pair {
        create(h, &aggregate_agreement("acme-hourly", "partner:acme")).await?;
    }
    let range = pair[0].1.range();
    let base = pair[0].1.base.unix_micros();
    let shared = format!("/api/v1/shared/{A}/aggregates?purpose=research&metric={METRIC}");
    // Up to the end of the current hour, still open: real-time aggregation on TimescaleDB.
    let recent = format!(
        "from={}&to={}",
        Timestamp::from_unix_micros(base),
        Timestamp::from_unix_micros(base + 6 * HOUR_US)
    );
    let hours = format!(
        "from={}&to={}",
        Timestamp::from_unix_micros(base),
        Timestamp::from_unix_micros(base + 5 * HOUR_US)
    );
    let requests = [
        (
            format!("{shared}&{range}&bucket=1h&functions=avg,sum,count"),
            Token::Partner,
        ),
        (
            format!("{shared}&{hours}&bucket=1h&functions=avg,count"),
            Token::Partner,
        ),
        (
            format!("/api/v1/readings/buckets?{recent}&bucket=1m"),
            Token::Viewer,
        ),
        (
            format!("/api/v1/readings/buckets?{recent}&bucket=1h"),
            Token::Viewer,
        ),
        (
            format!("/api/v1/readings/buckets?{range}&bucket=1d"),
            Token::Viewer,
        ),
    ];
    for (path, token) in &requests {
        let body = same_answer(&pair, path, *token).await?;
        assert_ne!(body.to_string().len(), 0);
    }
    let hourly = same_answer(&pair, &requests[0].0, Token::Partner).await?;
    assert_eq!(
        hourly["cells"].as_array().map(Vec::len),
        Some(12),
        "{hourly}"
    );

    // Materialized on TimescaleDB (a no-op on PostgreSQL): still the same answers.
    for (h, _) in &pair {
        h.store
            .refresh_aggregates(
                Timestamp::from_unix_micros(base - 24 * HOUR_US),
                Timestamp::now(),
            )
            .await?;
    }
    for (path, token) in &requests {
        same_answer(&pair, path, *token).await?;
    }
    for (h, _) in pair {
        h.stop().await?;
    }
    Ok(())
}
