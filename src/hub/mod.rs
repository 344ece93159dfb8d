//! A Hugging Face Hub client that trusts nothing the server says.
//!
//! `stance download` used hf-hub's download path, which a hostile hub or
//! mirror (`HF_ENDPOINT`) could steer: a `X-Repo-Commit: ../../..` or an
//! `ETag` with `../` wrote files outside the cache, a redirect loop or a
//! stalled body hung it, an endless body filled the disk, and truncated
//! blobs were kept and reused. This module replaces that path (hf-hub still
//! tells us where the cache lives):
//!
//! - [`names`]: every server-supplied name (commit, ETag) is validated as
//!   hex before it becomes part of a path;
//! - [`http`]: bounded redirects followed by hand, connect and read
//!   timeouts, a size cap on every body;
//! - [`digest`]: each file is checked against the hash the hub names it by
//!   (sha256 for LFS blobs, the git blob sha1 otherwise);
//! - [`cache`]: the hub cache layout (`refs/`, `snapshots/`, `blobs/`),
//!   shared with Python's huggingface_hub, where only verified blobs are
//!   stored and a cached blob is re-verified before every reuse.

pub(crate) mod cache;
pub mod digest;
pub(crate) mod http;
pub(crate) mod names;
