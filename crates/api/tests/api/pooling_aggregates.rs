//! Aggregates of a pooled network by territory, with the tenants of `pooling`: `metro` pools
//! ten-minute sensor cells to each commune by where its sensors stand. A cell is a commune's
//! only if its sensor stood inside the commune's boundary for the whole of the cell's bucket:
//! a sensor that crosses the boundary during a bucket has that bucket in neither commune's
//! answer, and is in each before and after, on its side.

use super::pooling::{commit_valued, minutes, parties, place, Parties, EAST, METRO, PURPOSE, WEST};
use super::*;

on_each_backend!(territory_aggregates_hold_only_cells_measured_inside);

/// `metro`'s pooling agreement with `commune`: ten-minute average and count of `air.*` per
/// sensor standing in the commune's zone `commune`, from `from` on.
async fn pool_cells(h: &Harness, p: &Parties, commune: &str, from: Timestamp) -> Result<()> {
    let agreement = json!({
        "id": format!("cells-{commune}"), "grantee": format!("tenant:{commune}"),
        "state": "active", "pooling": true,
        "not_before": ts(from), "not_after": "2100-01-01T00:00:00Z",
        "purposes": [PURPOSE], "action": "read_aggregate", "min_bucket_s": 600,
        "target": { "metrics": ["air.*"], "territories": ["commune"] },
        "functions": ["avg", "count"], "k": 1, "spatial_level": "sensor",
        "pseudonymise": false, "embargo_s": 0
    });
    let created = h
        .post_json("/api/v1/agreements", &p.metro, &agreement)
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    Ok(())
}

/// `(sensor, minutes after base, count)` of the cells `token`'s commune gets.
async fn cells(
    h: &Harness,
    token: &str,
    base: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, i64, u64)>> {
    let answer = h
        .get_json(
            &format!(
                "/api/v1/shared/{METRO}/aggregates?purpose={PURPOSE}&metric=air.no2&bucket=10m\
                 &functions=avg,count&level=sensor&from={}&to={}",
                ts(base),
                ts(to)
            ),
            token,
        )
        .await?;
    let mut cells: Vec<_> = answer["cells"]
        .as_array()
        .context("cells")?
        .iter()
        .map(|c| {
            let bucket: Timestamp = serde_json::from_value(c["bucket"].clone())?;
            Ok((
                c["unit"].as_str().unwrap_or_default().to_owned(),
                (bucket.unix_micros() - base.unix_micros()) / MINUTE_US,
                c["values"]["count"].as_u64().unwrap_or(0),
            ))
        })
        .collect::<Result<_>>()?;
    cells.sort();
    Ok(cells)
}

async fn territory_aggregates_hold_only_cells_measured_inside(h: Harness) -> Result<()> {
    let p = parties(&h).await?;
    let ten = 10 * MINUTE_US;
    let now = Timestamp::now();
    let base = Timestamp::from_unix_micros((now.unix_micros() - 3 * 60 * MINUTE_US) / ten * ten);
    for (sensor, lon) in [("s-west", 4.82), ("s-mover", 4.83), ("s-far", 5.5)] {
        place(&h, &p, sensor, lon, base).await?;
    }
    pool_cells(&h, &p, WEST, base).await?;
    pool_cells(&h, &p, EAST, base).await?;
    let all = ["s-west", "s-mover", "s-far"];
    // Buckets 0, 1 and 2 (minutes 0–10, 10–20, 20–30); s-mover crosses eastwards at 15.
    commit_valued(&h, METRO, 1, &all, minutes(base, 1), 10.0).await?;
    commit_valued(&h, METRO, 2, &all, minutes(base, 12), 20.0).await?;
    place(&h, &p, "s-mover", 4.87, minutes(base, 15)).await?;
    commit_valued(&h, METRO, 3, &all, minutes(base, 25), 30.0).await?;

    let to = minutes(base, 30);
    assert_eq!(
        cells(&h, &p.west, base, to).await?,
        [
            ("s-mover".to_owned(), 0, 1),
            ("s-west".to_owned(), 0, 1),
            ("s-west".to_owned(), 10, 1),
            ("s-west".to_owned(), 20, 1),
        ],
        "villeurbanne: s-mover only before the bucket it crossed in"
    );
    assert_eq!(
        cells(&h, &p.east, base, to).await?,
        [("s-mover".to_owned(), 20, 1)],
        "vaulx: s-mover only after the bucket it crossed in"
    );
    h.stop().await
}
