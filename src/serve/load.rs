//! A bounded load test for `stance serve` (`stance bench --mode serve`):
//! `clients` threads each send `requests` POSTs of the same body one after
//! another, then it stops. Reports throughput, latency percentiles, errors
//! and the server's resident memory (from `/healthz`) after a warm-up and
//! at the end, so growth under load shows.

use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub requests: usize,
    pub errors: usize,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub sentences_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Server resident memory after the (concurrent) warm-up and after the run, MB.
    pub rss_warm_mb: Option<f64>,
    pub rss_end_mb: Option<f64>,
}

fn rss_mb(agent: &ureq::Agent, base: &str) -> Option<f64> {
    let v: serde_json::Value = agent
        .get(&format!("{base}/healthz"))
        .call()
        .ok()?
        .into_json()
        .ok()?;
    v["rss_bytes"].as_f64().map(|b| b / 1e6)
}

/// One request: its latency and the sentences answered, or an error.
fn one(agent: &ureq::Agent, url: &str, body: &str) -> Result<(Duration, usize), String> {
    let t = Instant::now();
    let r = agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.into_json().map_err(|e| e.to_string())?;
    let n = v["articles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["sentences"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    if n == 0 {
        return Err(format!("no sentences in the answer: {v}"));
    }
    Ok((t.elapsed(), n))
}

/// Run the load test against the server at `base` (`http://host:port`),
/// posting `body` (a `/v1/predict` JSON body) to `/v1/predict`.
pub fn run(base: &str, body: &str, clients: usize, requests: usize) -> LoadReport {
    let base = base.trim_end_matches('/').to_string();
    let url = format!("{base}/v1/predict");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    // Warm-up at full concurrency (two requests per client), so the
    // server's batches, allocator pools and caches reach their working size
    // before memory is first read: growth after that would be a leak.
    std::thread::scope(|s| {
        for _ in 0..clients {
            let (agent, url) = (agent.clone(), url.clone());
            s.spawn(move || (0..2).for_each(|_| drop(one(&agent, &url, body))));
        }
    });
    let rss_warm_mb = rss_mb(&agent, &base);
    let start = Instant::now();
    let results: Vec<Vec<Result<(Duration, usize), String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let agent = agent.clone();
                let url = url.clone();
                s.spawn(move || (0..requests).map(|_| one(&agent, &url, body)).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = Vec::new();
    let mut sentences = 0usize;
    let mut errors = 0usize;
    let mut first_error = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok((d, n)) => {
                lat.push(d.as_secs_f64() * 1e3);
                sentences += n;
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1]
        }
    };
    LoadReport {
        clients,
        requests: clients * requests,
        errors,
        first_error,
        seconds,
        requests_per_s: lat.len() as f64 / seconds,
        sentences_per_s: sentences as f64 / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        rss_warm_mb,
        rss_end_mb: rss_mb(&agent, &base),
    }
}
