//! HTTP for the hub, bounded in every direction: redirects are followed by
//! hand up to a limit (and only to http or https), connects and reads time
//! out, and no body is read past a cap.

use super::digest::Digest;
use super::names;
use std::io::{Read, Write};
use std::time::Duration;

/// Redirects followed before giving up: the hub sends at most two (a
/// renamed repository, then the CDN for an LFS file).
pub const MAX_REDIRECTS: usize = 5;

pub struct Client {
    agent: ureq::Agent,
    /// The endpoint's host: the token is sent there and nowhere else (not
    /// to a CDN a redirect points at).
    host: Option<String>,
    token: Option<String>,
    timeout: Duration,
}

/// What the hub says about one file: the commit it resolved the revision
/// to, the hash the content must have, and its size if announced.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub commit: String,
    pub digest: Digest,
    pub size: Option<u64>,
}

pub enum Opened {
    /// 404 on the first request: the repository has no such file.
    Missing,
    Found {
        meta: FileMeta,
        body: Box<ureq::Response>,
    },
}

impl Client {
    pub fn new(endpoint: &str, token: Option<String>, timeout: Duration) -> Client {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(timeout)
            .timeout_read(timeout)
            .timeout_write(timeout)
            .user_agent(concat!("stance/", env!("CARGO_PKG_VERSION")))
            .build();
        let host = url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        Client {
            agent,
            host,
            token,
            timeout,
        }
    }

    /// GET `url`, following up to [`MAX_REDIRECTS`] redirects, and read the
    /// file's metadata from the first response that carries
    /// `X-Repo-Commit` (the hub's own answer, before any CDN).
    pub fn open(&self, url: &str) -> Result<Opened, String> {
        let mut current = url::Url::parse(url).map_err(|e| format!("bad URL {url}: {e}"))?;
        let mut meta: Option<(String, Digest, Option<u64>)> = None;
        for hop in 0..=MAX_REDIRECTS {
            let mut req = self.agent.request_url("GET", &current);
            if let (Some(token), Some(host)) = (&self.token, &self.host) {
                if current.host_str() == Some(host.as_str()) {
                    req = req.set("Authorization", &format!("Bearer {token}"));
                }
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) if hop == 0 => return Ok(Opened::Missing),
                Err(ureq::Error::Status(code, r)) => {
                    let hint = match code {
                        401 | 403 => " (a private or gated repository: set HF_TOKEN)",
                        _ => "",
                    };
                    return Err(format!(
                        "HTTP {code} {} from {current}{hint}",
                        r.status_text()
                    ));
                }
                Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
            };
            if meta.is_none() && resp.header("x-repo-commit").is_some() {
                meta = Some(read_meta(&resp)?);
            }
            if (300..400).contains(&resp.status()) {
                let loc = resp.header("location").ok_or_else(|| {
                    format!("HTTP {} from {current} without Location", resp.status())
                })?;
                let next = current
                    .join(loc)
                    .map_err(|e| format!("bad redirect Location {loc:?} from {current}: {e}"))?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(format!(
                        "refused redirect from {current} to {next}: only http and https are followed"
                    ));
                }
                current = next;
                continue;
            }
            let Some((commit, digest, linked_size)) = meta else {
                return Err(format!(
                    "{current} sent no X-Repo-Commit header: not a Hugging Face Hub (check HF_ENDPOINT)"
                ));
            };
            let size = linked_size.or_else(|| {
                resp.header("content-length")
                    .and_then(|v| v.trim().parse().ok())
            });
            return Ok(Opened::Found {
                meta: FileMeta {
                    commit,
                    digest,
                    size,
                },
                body: Box::new(resp),
            });
        }
        Err(format!(
            "more than {MAX_REDIRECTS} redirects from {url} (a redirect loop?)"
        ))
    }

    /// Copy `body` into `out`: at most `cap` bytes, and exactly `size` when
    /// the hub announced one. `progress` is told the bytes so far.
    pub fn copy_body(
        &self,
        body: Box<ureq::Response>,
        size: Option<u64>,
        cap: u64,
        out: &mut impl Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, String> {
        let limit = size.map_or(cap, |s| s.min(cap));
        let mut reader = body.into_reader().take(limit + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut total: u64 = 0;
        let mut eof_error = None;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Err(format!(
                        "the server sent nothing for {} s after {total} bytes (stalled; see --timeout)",
                        self.timeout.as_secs_f64()
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    eof_error = Some(e);
                    break;
                }
                Err(e) => return Err(format!("reading the body after {total} bytes: {e}")),
            };
            total += n as u64;
            if total > limit {
                return Err(match size {
                    Some(s) if s <= cap => {
                        format!("the body is longer than the {s} bytes announced")
                    }
                    _ => format!("the body is larger than the {cap}-byte limit for this file"),
                });
            }
            out.write_all(&buf[..n])
                .map_err(|e| format!("writing to the cache: {e}"))?;
            progress(total);
        }
        // A body cut short (the connection closed early, or fewer bytes
        // than Content-Length) is refused whoever announced the size.
        if let Some(s) = size {
            if total != s {
                return Err(format!("truncated: got {total} of {s} bytes"));
            }
        }
        if let Some(e) = eof_error {
            return Err(format!("truncated: got {total} bytes, then {e}"));
        }
        Ok(total)
    }
}

/// Commit, content hash and announced size from a hub response; every value
/// is validated here, because the commit and the hash become path parts.
fn read_meta(resp: &ureq::Response) -> Result<(String, Digest, Option<u64>), String> {
    let raw_commit = resp.header("x-repo-commit").unwrap_or_default();
    let commit = names::commit(raw_commit).ok_or_else(|| {
        format!("the server sent X-Repo-Commit {raw_commit:?}, which is not a 40-hex commit id")
    })?;
    let (header, raw) = match resp.header("x-linked-etag") {
        Some(v) => ("X-Linked-Etag", v),
        None => ("ETag", resp.header("etag").unwrap_or_default()),
    };
    let digest = Digest::parse(raw).ok_or_else(|| {
        format!("the server sent {header} {raw:?}, which is neither a sha256 nor a git blob id")
    })?;
    let size = match resp.header("x-linked-size") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("the server sent X-Linked-Size {v:?}, not a byte count"))?,
        ),
    };
    Ok((commit, digest, size))
}
