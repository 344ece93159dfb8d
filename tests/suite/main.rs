//! The integration tests, as one test binary: the shared fixtures in
//! `common/` and the heavy dependencies are compiled and linked once, not
//! once per file. Run one area with a filter, e.g.
//! `cargo test --test suite safety::` or `cargo test --test suite fuzz::`.

mod common;

mod attribution;
mod cli;
mod corpus;
mod download;
mod engine;
mod frozen_cache;
mod fuzz;
mod html_view;
mod model;
mod mpnet;
mod native_step;
mod readme;
mod realnews;
mod roberta;
mod safety;
mod serve;
mod shipped_model;
mod shipped_tagger;
mod spark;
mod splitter;
mod stream;
mod token_head;
