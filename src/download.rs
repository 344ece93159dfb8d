//! `stance download`: fetch a pretrained encoder (config.json, tokenizer,
//! model.safetensors) from the Hugging Face Hub, honouring `HF_HOME` /
//! `HF_HUB_CACHE` (cache), `HF_ENDPOINT` (mirror) and `HF_TOKEN`, or from
//! the cache alone with `offline`. The server is not trusted (see
//! [`crate::hub`]): each file is verified against its hash before it is
//! cached or used, and the weights must parse. Files are then copied into a
//! plain model directory, atomically.

use crate::hub::cache::RepoCache;
use crate::hub::digest::Digest;
use crate::hub::http::{Client, Opened};
use crate::hub::names;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::hub::names::{validate_model_id, validate_revision};

#[derive(Debug, Clone)]
pub struct DownloadConfig {
    pub model_id: String,
    pub revision: String,
    pub out: PathBuf,
    pub offline: bool,
    /// A progress bar on stderr (a terminal); otherwise one line per file.
    pub progress: bool,
    /// Replace `out` when it holds an earlier stance download.
    pub overwrite: bool,
    /// Connect and read timeout: a server silent this long is given up on.
    pub timeout: Duration,
}

const MIB: u64 = 1 << 20;

/// Files fetched, in order: whether each is required, and the most bytes
/// accepted for it (a body past the cap is cut off and refused).
const FILES: &[(&str, bool, u64)] = &[
    ("config.json", true, 16 * MIB),
    ("tokenizer.json", false, 64 * MIB),
    ("vocab.txt", false, 16 * MIB),
    ("tokenizer_config.json", false, 16 * MIB),
    ("special_tokens_map.json", false, 16 * MIB),
    ("model.safetensors", true, 8 * 1024 * MIB),
];

pub fn download(cfg: &DownloadConfig) -> Result<Vec<PathBuf>> {
    validate_model_id(&cfg.model_id)?;
    validate_revision(&cfg.revision)?;
    crate::guard::checkpoint_dir(&cfg.out, "--out", cfg.overwrite, &[])?;
    let cache = RepoCache::from_env(&cfg.model_id)?;
    // huggingface_hub's switch: no network, the cache only.
    let fetched = if cfg.offline || env_offline() {
        from_cache(cfg, &cache)?
    } else {
        from_hub(cfg, &cache)?
    };
    if !fetched
        .iter()
        .any(|(n, _)| n == "tokenizer.json" || n == "vocab.txt")
    {
        return Err(err(
            cfg,
            "the repository has neither tokenizer.json nor vocab.txt".into(),
        ));
    }
    write_model_dir(&cfg.out, &fetched)?;
    Ok(fetched.iter().map(|(n, _)| cfg.out.join(n)).collect())
}

/// A model named as the hub names it, `org/name[@revision]`, resolved to
/// its snapshot directory in the hub cache (huggingface_hub's layout, so a
/// model Python tools fetched is found too). Each cached file is verified
/// against its hash before use; what is not cached is downloaded first,
/// unless `offline` or `HF_HUB_OFFLINE` says not to.
pub fn resolve_model(name: &str, offline: bool, timeout: Duration) -> Result<PathBuf> {
    let (model_id, revision) = match name.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (name, "main"),
    };
    let cfg = DownloadConfig {
        model_id: model_id.into(),
        revision: revision.into(),
        out: PathBuf::new(),
        offline,
        progress: false,
        overwrite: false,
        timeout,
    };
    validate_model_id(&cfg.model_id)?;
    validate_revision(&cfg.revision)?;
    let cache = RepoCache::from_env(&cfg.model_id)?;
    match from_cache(&cfg, &cache) {
        Ok(_) => {}
        Err(e) if offline || env_offline() => return Err(e),
        Err(_) => {
            from_hub(&cfg, &cache)?;
        }
    }
    // Every file verified and linked: the snapshot is the model directory.
    let commit = cache
        .commit_of(&cfg.revision)?
        .ok_or_else(|| err(&cfg, "no commit recorded in the cache".into()))?;
    Ok(cache.dir().join("snapshots").join(commit))
}

/// `HF_HUB_OFFLINE` as huggingface_hub reads it.
fn env_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn err(cfg: &DownloadConfig, message: String) -> Error {
    Error::Download {
        repo: format!("{}@{}", cfg.model_id, cfg.revision),
        message,
    }
}

fn from_cache(cfg: &DownloadConfig, cache: &RepoCache) -> Result<Vec<(String, PathBuf)>> {
    let not_cached = |name: &str| {
        err(
            cfg,
            format!(
                "{name} is not in the cache at {} (--offline reads only the cache; run once without --offline)",
                cache.dir().display()
            ),
        )
    };
    let Some(commit) = cache.commit_of(&cfg.revision)? else {
        return Err(not_cached("config.json"));
    };
    let mut fetched = Vec::new();
    for (name, required, _) in FILES {
        match cache.cached_file(&commit, name)? {
            Some(p) => fetched.push((name.to_string(), p)),
            None if *required => return Err(not_cached(name)),
            None => {}
        }
    }
    Ok(fetched)
}

fn from_hub(cfg: &DownloadConfig, cache: &RepoCache) -> Result<Vec<(String, PathBuf)>> {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into());
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let token = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| hf_hub::Cache::from_env().token());
    let client = Client::new(&endpoint, token, cfg.timeout);
    let mut commit: Option<String> = None;
    let mut fetched = Vec::new();
    for (name, required, cap) in FILES {
        let url = format!(
            "{endpoint}/{}/resolve/{}/{name}",
            cfg.model_id,
            names::url_revision(&cfg.revision)
        );
        let fail = |m: String| err(cfg, format!("{name} from {endpoint}: {m}"));
        let (meta, body) = match client.open(&url) {
            Ok(Opened::Found { meta, body }) => (meta, body),
            Ok(Opened::Missing) if !required => continue,
            Ok(Opened::Missing) => {
                return Err(err(cfg, format!("the repository has no {name}")));
            }
            Err(m) if fetched.is_empty() => {
                return Err(err(cfg, format!(
                    "cannot fetch {name} from {endpoint}: {m}. Check the network, set HF_ENDPOINT to a mirror, use --offline with a filled cache, or run scripts/fetch-base-model.sh"
                )));
            }
            Err(m) => return Err(fail(m)),
        };
        match &commit {
            None => commit = Some(meta.commit.clone()),
            Some(c) if *c != meta.commit => {
                return Err(fail(format!(
                    "served from commit {}, but earlier files came from {c} (the repository changed during the download; run again)",
                    meta.commit
                )));
            }
            Some(_) => {}
        }
        if *name == "model.safetensors" && !matches!(meta.digest, Digest::Sha256(_)) {
            return Err(fail(format!(
                "the server gave no sha256 (X-Linked-Etag) for the weights, only {} {}, so they cannot be verified",
                meta.digest.kind(),
                meta.digest.hex()
            )));
        }
        if let Some(size) = meta.size.filter(|s| s > cap) {
            return Err(fail(format!(
                "announced as {size} bytes, over the {cap}-byte limit for this file"
            )));
        }
        let blob = match cache.verified_blob(&meta.digest)? {
            Some(blob) => {
                drop(body);
                eprintln!("{name}: in the cache, {} verified", meta.digest.kind());
                blob
            }
            None => {
                let mut incoming = cache.incoming()?;
                let bar = progress_bar(cfg.progress, name, meta.size);
                let n = client
                    .copy_body(body, meta.size, *cap, incoming.writer(), &mut |n| {
                        if let Some(b) = &bar {
                            b.set_position(n)
                        }
                    })
                    .map_err(&fail)?;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                let blob = cache.store(incoming, &meta.digest).map_err(&fail)?;
                eprintln!(
                    "{name}: {:.1} MB, {} verified",
                    n as f64 / 1e6,
                    meta.digest.kind()
                );
                blob
            }
        };
        cache.link(&meta.commit, name, &meta.digest)?;
        fetched.push((name.to_string(), blob));
    }
    if let Some(c) = &commit {
        cache.set_ref(&cfg.revision, c)?;
    }
    Ok(fetched)
}

fn progress_bar(on: bool, name: &str, size: Option<u64>) -> Option<crate::progress::Progress> {
    if !on {
        return None;
    }
    let bar = crate::progress::Progress::new(
        size.unwrap_or(0),
        "{msg} {bytes}/{total_bytes} {bytes_per_sec}",
        "bytes",
    );
    bar.set_message(name.to_string());
    Some(bar)
}

/// Copy the fetched files into `out`, building tokenizer.json from vocab.txt
/// when the repository has none; the config must hold and the weights must
/// parse as safetensors with shapes that fit it.
fn write_model_dir(out: &Path, files: &[(String, PathBuf)]) -> Result<()> {
    crate::atomic::write_dir(out, "model download", |tmp| {
        for (name, src) in files {
            std::fs::copy(src, tmp.join(name)).map_err(|e| Error::io(src, e))?;
        }
        if !tmp.join("tokenizer.json").exists() {
            let tok = crate::checkpoint::tokenizer_path_or_build(tmp)?;
            tok.save(tmp.join("tokenizer.json"), false)
                .map_err(|e| Error::Tokenizer {
                    path: tmp.join("tokenizer.json"),
                    message: e.to_string(),
                })?;
        }
        let config_path = tmp.join("config.json");
        let config = crate::model::BertConfig::from_file(&config_path)?;
        let weights = tmp.join("model.safetensors");
        let map = crate::model::map_file(&weights)?;
        safetensors::SafeTensors::deserialize(&map[..]).map_err(|e| {
            Error::file(
                out.join("model.safetensors"),
                format!("the downloaded weights are not a valid safetensors file: {e}"),
            )
        })?;
        drop(map);
        crate::model::preflight::check_against_weights(&config, &config_path, &weights)?;
        Ok(())
    })
}
