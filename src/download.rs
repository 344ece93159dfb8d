//! `stance download`: fetch a pretrained encoder (config.json, tokenizer,
//! model.safetensors) from the Hugging Face Hub with the hf-hub crate,
//! honouring `HF_HOME` (cache) and `HF_ENDPOINT` (mirror), or from the cache
//! alone with `offline`. Files are copied into a plain model directory,
//! atomically.

use crate::{Error, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DownloadConfig {
    pub model_id: String,
    pub revision: String,
    pub out: PathBuf,
    pub offline: bool,
    pub progress: bool,
    /// Replace `out` when it holds an earlier stance download.
    pub overwrite: bool,
}

/// A hub id is `name` or `owner/name`, each part letters, digits, `-`, `_`
/// and `.`, not `.` or `..` alone: anything else would make a surprising
/// default output path (`ok/` made it `models/`).
pub fn validate_model_id(id: &str) -> Result<()> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok_part = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.len() <= 96
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if parts.len() > 2 || !parts.iter().all(ok_part) {
        return Err(Error::Invalid(format!(
            "model id {id:?}: expected NAME or OWNER/NAME (letters, digits, '-', '_', '.')"
        )));
    }
    Ok(())
}

/// A revision is a branch, tag or commit: no `..`, no leading `/`, no
/// characters a path could escape with.
pub fn validate_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 128
        && !rev.starts_with('/')
        && !rev
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !ok {
        return Err(Error::Invalid(format!(
            "--revision {rev:?}: expected a branch, tag or commit name"
        )));
    }
    Ok(())
}

/// Files fetched, in order; `required` ones must exist.
const FILES: &[(&str, bool)] = &[
    ("config.json", true),
    ("tokenizer.json", false),
    ("vocab.txt", false),
    ("tokenizer_config.json", false),
    ("special_tokens_map.json", false),
    ("model.safetensors", true),
];

pub fn download(cfg: &DownloadConfig) -> Result<Vec<PathBuf>> {
    validate_model_id(&cfg.model_id)?;
    validate_revision(&cfg.revision)?;
    crate::guard::checkpoint_dir(&cfg.out, "--out", cfg.overwrite, &[])?;
    let repo = Repo::with_revision(cfg.model_id.clone(), RepoType::Model, cfg.revision.clone());
    let err = |message: String| Error::Download {
        repo: format!("{}@{}", cfg.model_id, cfg.revision),
        message,
    };
    let mut fetched: Vec<(String, PathBuf)> = Vec::new();
    if cfg.offline {
        let cache = Cache::from_env();
        let cached = cache.repo(repo);
        for (name, required) in FILES {
            match cached.get(name) {
                Some(p) => fetched.push((name.to_string(), p)),
                None if *required => return Err(err(format!("{name} is not in the cache at {} (--offline reads only the cache; run once without --offline)", cache.path().display()))),
                None => {}
            }
        }
    } else {
        let builder = ApiBuilder::from_env().with_progress(cfg.progress);
        let endpoint =
            std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
        let api = builder.build().map_err(|e| err(e.to_string()))?;
        let api = api.repo(repo);
        for (name, required) in FILES {
            match api.get(name) {
                Ok(p) => fetched.push((name.to_string(), p)),
                Err(e) => {
                    let msg = e.to_string();
                    let missing = msg.contains("404")
                        || msg.contains("Not Found")
                        || msg.contains("status code 404");
                    if missing && !required {
                        continue;
                    }
                    if missing {
                        return Err(err(format!("the repository has no {name}")));
                    }
                    return Err(err(format!(
                        "cannot fetch {name} from {endpoint}: {msg}. Check the network, set HF_ENDPOINT to a mirror, use --offline with a filled cache, or run scripts/fetch-base-model.sh"
                    )));
                }
            }
        }
    }
    if !fetched
        .iter()
        .any(|(n, _)| n == "tokenizer.json" || n == "vocab.txt")
    {
        return Err(err(
            "the repository has neither tokenizer.json nor vocab.txt".into(),
        ));
    }
    write_model_dir(&cfg.out, &fetched)?;
    Ok(fetched.iter().map(|(n, _)| cfg.out.join(n)).collect())
}

/// Copy the fetched files into `out`, building tokenizer.json from vocab.txt
/// when the repository has none.
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
        crate::model::BertConfig::from_file(&tmp.join("config.json"))?;
        Ok(())
    })
}
