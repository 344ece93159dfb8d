//! `stance serve`: the model loaded once behind a local HTTP API and a page
//! where you paste an article and see it highlighted.
//!
//! - `GET /`: the paste page.
//! - `POST /v1/predict`: a JSON body (see [`api`]), answered as JSON; or,
//!   with `Content-Type: application/x-ndjson`, one article per line in and
//!   one result per line out, streamed in input order as each is done.
//! - `POST /v1/view`: the same body, answered with the self-contained HTML
//!   view that `predict --format html` writes.
//! - `GET /v1/model`: labels, base, version, window, context.
//! - `GET /healthz`.
//!
//! Bodies over `max_body` bytes get 413 (for NDJSON the limit is per
//! line, so archives can stream); bad requests get 4xx with a JSON error
//! naming the problem; a request not answered within `timeout` gets 504.
//! Concurrent requests are labelled together by one model thread
//! ([`batcher`]). SIGTERM or Ctrl-C stops accepting connections and lets
//! requests in flight finish.

pub(crate) mod api;
pub mod batcher;
pub mod load;

use crate::checkpoint::Checkpoint;
use crate::predict::Prediction;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batcher::{BatchOptions, Batcher, SubmitError};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// Largest request body (for NDJSON: largest line), bytes.
    pub max_body: usize,
    /// Longest a request may take from its first byte to its answer.
    pub timeout: Duration,
    pub batch: BatchOptions,
}

struct AppState {
    batcher: Batcher,
    model: Value,
    max_body: usize,
    timeout: Duration,
    low: f32,
}

type Shared = Arc<AppState>;

/// Run the server until SIGTERM or Ctrl-C (or `shutdown` resolving), then
/// finish the requests in flight. `ready` gets the bound address (useful
/// with port 0).
/// With a `tagger`, answers and the article view say who claims what.
pub fn run(
    ckpt: Checkpoint,
    tagger: Option<crate::attribution::tagger::Tagger>,
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr),
) -> crate::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Invalid(format!("starting the server runtime: {e}")))?;
    let model = model_info(&ckpt, tagger.as_ref());
    let (batcher, worker) = Batcher::start(ckpt, tagger, config.batch);
    let state = Arc::new(AppState {
        batcher,
        model,
        max_body: config.max_body,
        timeout: config.timeout,
        low: 0.5,
    });
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| {
                crate::Error::Invalid(format!("--addr {}: cannot listen: {e}", config.addr))
            })?;
        let local = listener
            .local_addr()
            .map_err(|e| crate::Error::Invalid(format!("--addr {}: {e}", config.addr)))?;
        ready(local);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| crate::Error::Invalid(format!("server: {e}")))
    });
    // The router (and with it the last Batcher) is gone: the model thread
    // finishes what is queued and stops.
    let _ = worker.join();
    result
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { Json(json!({"status": "ok", "rss_bytes": crate::memory::resident_bytes()})) }))
        .route("/v1/model", get(model))
        .route("/v1/predict", post(predict))
        .route("/v1/view", post(view))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint: see GET /, POST /v1/predict, POST /v1/view, GET /v1/model, GET /healthz") })
        .with_state(state)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("stance serve: shutting down; finishing requests in flight");
}

fn model_info(ckpt: &Checkpoint, tagger: Option<&crate::attribution::tagger::Tagger>) -> Value {
    let base_of = |c: &Checkpoint| {
        c.settings
            .base
            .as_ref()
            .map(|b| json!({"id": b.id, "revision": b.revision, "sha256": b.sha256}))
    };
    let name = |c: &Checkpoint| c.dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let base = base_of(ckpt);
    // Who claims what: the tagger, or null when the server labels sentences only.
    let attribution = tagger.map(|t| json!({"model": name(&t.ckpt), "base": base_of(&t.ckpt)}));
    json!({
        "labels": ckpt.labels.names(),
        "base": base,
        "model": name(ckpt),
        "attribution": attribution,
        "version": env!("CARGO_PKG_VERSION"),
        "max_length": ckpt.settings.max_len,
        "context": ckpt.settings.context,
        "temperature": ckpt.settings.temperature,
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(api::error_json(message))).into_response()
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("page.html"),
    )
        .into_response()
}

async fn model(State(s): State<Shared>) -> Json<Value> {
    Json(s.model.clone())
}

/// Whether the body is NDJSON; an unsupported type is the 415 message.
fn is_ndjson(headers: &HeaderMap) -> Result<bool, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "" => Ok(false),
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" => Ok(true),
        other => Err(format!(
            "Content-Type {other:?}: send application/json or application/x-ndjson"
        )),
    }
}

/// The whole body, refusing it (413) as soon as it passes `limit`.
async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, Response> {
    let too_big = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over the {limit}-byte limit (stance serve --max-body)"),
        )
    };
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > limit {
            return Err(too_big());
        }
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_big());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

/// Label a parsed request's articles through the batcher.
async fn label(s: &AppState, req: &api::PredictRequest) -> Result<Vec<Vec<Prediction>>, Response> {
    let rx = s
        .batcher
        .submit(req.articles.clone(), req.sentences)
        .map_err(|e| match e {
            SubmitError::Busy => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server busy: too many requests queued; retry shortly",
            ),
            SubmitError::Stopped => error(StatusCode::SERVICE_UNAVAILABLE, "server shutting down"),
        })?;
    let mut preds = rx
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "server shutting down"))?
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("labelling failed: {e}"),
            )
        })?;
    if let Some(t) = req.threshold {
        for p in &mut preds {
            crate::predict::apply_threshold(p, t);
        }
    }
    Ok(preds)
}

async fn with_timeout(t: Duration, f: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(t, f).await {
        Ok(r) => r,
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "request not answered within {} s (stance serve --timeout)",
                t.as_secs_f32()
            ),
        ),
    }
}

async fn predict(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let ndjson = match is_ndjson(&parts.headers) {
        Ok(n) => n,
        Err(m) => return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &m),
    };
    if ndjson {
        return predict_ndjson(s, body);
    }
    let timeout = s.timeout;
    with_timeout(timeout, async move {
        match read_and_label(&s, &parts.headers, body).await {
            Ok((req, preds)) => {
                let articles: Vec<Value> = req
                    .ids
                    .iter()
                    .zip(&preds)
                    .map(|(id, p)| api::article_json(id, p, req.top_k))
                    .collect();
                Json(json!({"articles": articles, "model": s.model})).into_response()
            }
            Err(r) => r,
        }
    })
    .await
}

/// Read a JSON body, parse it and label its articles; any failure is the
/// response to send.
async fn read_and_label(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(api::PredictRequest, Vec<Vec<Prediction>>), Response> {
    let bytes = read_body(body, s.max_body, headers).await?;
    let req = api::parse_request(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &e))?;
    let preds = label(s, &req).await?;
    Ok((req, preds))
}

async fn view(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let timeout = s.timeout;
    with_timeout(timeout, async move {
        match read_and_label(&s, &parts.headers, body).await {
            Ok((req, preds)) => {
                let flat: Vec<Prediction> = preds.into_iter().flatten().collect();
                let low = req.threshold.unwrap_or(s.low);
                let html = crate::html::render_html(&req.articles, &flat, low);
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
            }
            Err(r) => r,
        }
    })
    .await
}

/// One NDJSON line's outcome, in input order.
enum Pending {
    Job(
        Value,
        usize,
        tokio::sync::oneshot::Receiver<batcher::JobResult>,
    ),
    Done(Value),
}

/// NDJSON: every line `{"id": ..., "text": ...}` becomes one output line,
/// `{"id": ..., "sentences": [...]}` or `{"id": ..., "line": N, "error":
/// "..."}`, written as soon as it and every line before it are done. The
/// size limit applies per line; reading stops when 64 lines are pending, so
/// memory stays bounded whatever the body's length.
fn predict_ndjson(s: Shared, body: Body) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Pending>(64);
    let reader = s.clone();
    tokio::spawn(async move {
        let s = reader;
        let mut stream = body.into_data_stream();
        let mut line: Vec<u8> = Vec::new();
        let mut n = 0usize;
        let mut skipping = false;
        loop {
            let chunk = match stream.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    let _ = tx
                        .send(Pending::Done(
                            json!({"line": n + 1, "error": format!("reading the body: {e}")}),
                        ))
                        .await;
                    return;
                }
                None => break,
            };
            for &b in chunk.iter() {
                if b == b'\n' {
                    n += 1;
                    let p = if skipping {
                        Some(Pending::Done(
                            json!({"line": n, "error": format!("line over the {}-byte limit (stance serve --max-body)", s.max_body)}),
                        ))
                    } else {
                        ndjson_line(&s, &line, n).await
                    };
                    skipping = false;
                    line.clear();
                    if let Some(p) = p {
                        if tx.send(p).await.is_err() {
                            return;
                        }
                    }
                } else if !skipping {
                    line.push(b);
                    if line.len() > s.max_body {
                        skipping = true;
                        line = Vec::new();
                    }
                }
            }
        }
        if skipping || !line.is_empty() {
            n += 1;
            let p = if skipping {
                Some(Pending::Done(
                    json!({"line": n, "error": format!("line over the {}-byte limit (stance serve --max-body)", s.max_body)}),
                ))
            } else {
                ndjson_line(&s, &line, n).await
            };
            if let Some(p) = p {
                let _ = tx.send(p).await;
            }
        }
    });
    let timeout = s.timeout;
    let out = futures_util::stream::unfold(rx, move |mut rx| async move {
        let p = rx.recv().await?;
        let v = match p {
            Pending::Done(v) => v,
            Pending::Job(id, n, job) => match tokio::time::timeout(timeout, job).await {
                Ok(Ok(Ok(mut preds))) => {
                    let top_k = 0;
                    let p = preds.pop().unwrap_or_default();
                    api::article_json(&id, &p, top_k)
                }
                Ok(Ok(Err(e))) => {
                    json!({"id": id, "line": n, "error": format!("labelling failed: {e}")})
                }
                Ok(Err(_)) => json!({"id": id, "line": n, "error": "server shutting down"}),
                Err(_) => {
                    json!({"id": id, "line": n, "error": format!("not labelled within {} s (stance serve --timeout)", timeout.as_secs_f32())})
                }
            },
        };
        Some((
            Ok::<Bytes, std::convert::Infallible>(Bytes::from(v.to_string() + "\n")),
            rx,
        ))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(out),
    )
        .into_response()
}

/// Parse and queue one NDJSON line. A full queue makes the stream wait
/// (back-pressure) rather than fail the line.
async fn ndjson_line(s: &AppState, line: &[u8], n: usize) -> Option<Pending> {
    let text = String::from_utf8_lossy(line);
    if text.trim().is_empty() {
        return None;
    }
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Some(Pending::Done(
                json!({"line": n, "error": format!("bad JSON: {e}")}),
            ))
        }
    };
    let id = v.get("id").cloned().unwrap_or(json!(n));
    let article = match api::parse_article(id.clone(), &v, &format!("line {n}")) {
        Ok(a) => a,
        Err(e) => return Some(Pending::Done(json!({"id": id, "line": n, "error": e}))),
    };
    loop {
        match s.batcher.submit(vec![article.0.clone()], article.1) {
            Ok(rx) => return Some(Pending::Job(id, n, rx)),
            Err(SubmitError::Busy) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(SubmitError::Stopped) => {
                return Some(Pending::Done(
                    json!({"id": id, "line": n, "error": "server shutting down"}),
                ))
            }
        }
    }
}
