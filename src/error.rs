//! The library's error type. Every variant carries the context a user needs to
//! fix the problem: the file, the line, what was expected.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    #[error("model directory {dir}: {message}")]
    Model { dir: PathBuf, message: String },

    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("invalid argument: {0}")]
    Invalid(String),

    #[error("training diverged: {0}")]
    Diverged(String),

    #[error("download of {repo}: {message}")]
    Download { repo: String, message: String },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn data(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn model(dir: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            dir: dir.into(),
            message: message.into(),
        }
    }
}
