//! The root package of the hora workspace: it owns the top-level `examples/`
//! and the end-to-end `tests/` that run `horad` and `hora` together. The
//! code lives in `crates/proto`, `crates/server` and `crates/client`.
