//! The first-visit scenario: a visitor's first look at the gallery in Chromium (driven by
//! `end2end/bench/first-visit.mjs`), on the embedded set-up with the benchmark's pictures:
//! bytes on the wire with an empty cache, time until the page is interactive (hydrated), and
//! the bytes of the same visit again, which the year-long caching of the hashed files keeps to
//! the page itself.

use crate::report::{Figure, Goal};
use crate::{figure, say};
use serde::Deserialize;
use std::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../end2end/bench/first-visit.mjs"
);

#[derive(Debug, Deserialize)]
struct Visits {
    first: Visit,
    again: Visit,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Visit {
    bytes: f64,
    interactive_ms: Option<f64>,
    resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    url: String,
    bytes: f64,
}

/// `1234 B` as `1.2 kB`, for the checks column.
fn kb(bytes: f64) -> String {
    format!("{:.1} kB", bytes / 1000.0)
}

/// What each response of a visit carried, largest first: `live-gallery.….wasm 301.2 kB, …`.
fn breakdown(visit: &Visit) -> String {
    let mut resources: Vec<&Resource> = visit.resources.iter().collect();
    resources.sort_by(|a, b| b.bytes.total_cmp(&a.bytes));
    resources
        .iter()
        .map(|r| {
            let path = r.url.split_once("://").map_or(&*r.url, |(_, rest)| rest);
            let path = path.find('/').map_or("/", |at| &path[at..]);
            let name = path
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or(path);
            format!("{name} {}", kb(r.bytes))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the script against `url` (a page of a running web instance) and returns the figures.
pub async fn measure(url: &str, products: usize) -> Result<Vec<Figure>, String> {
    say(&format!("first visit to {url} in Chromium"));
    let url = url.to_owned();
    let output =
        tokio::task::spawn_blocking(move || Command::new("node").arg(SCRIPT).arg(&url).output())
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| format!("cannot run node {SCRIPT}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "{SCRIPT} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let visits: Visits = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("{SCRIPT} printed no figures: {err}"))?;
    let scenario = format!("first visit to /, {products} products, Chromium");
    let hydrated = visits.first.interactive_ms.is_some();
    let check = format!(
        "hydrated: {}; {}",
        if hydrated { "yes" } else { "NO" },
        breakdown(&visits.first)
    );
    Ok(vec![
        figure(
            &scenario,
            "bytes on the wire (empty cache)",
            visits.first.bytes / 1000.0,
            "kB",
        )
        .target(Goal::AtMost, 300.0)
        .checked(hydrated, check.clone()),
        figure(
            &scenario,
            "time to interactive (hydrated)",
            visits.first.interactive_ms.unwrap_or(f64::NAN),
            "ms",
        )
        .target(Goal::AtMost, 1000.0)
        .checked(hydrated, check),
        figure(
            &scenario,
            "bytes on the wire, visiting again",
            visits.again.bytes / 1000.0,
            "kB",
        )
        .checked(
            visits.again.interactive_ms.is_some(),
            format!("the files from the cache; {}", breakdown(&visits.again)),
        ),
    ])
}
