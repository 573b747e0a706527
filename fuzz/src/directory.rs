//! The directory's REGISTER/HEARTBEAT/DEREGISTER processing: validation,
//! the registry with its discover index, and the full-scan reference that
//! the index is checked against (`cfg(fuzzing)`).

#[path = "../../src/directory/beat.rs"]
mod beat;

#[path = "../../src/directory/change.rs"]
mod change;

#[path = "../../src/directory/nodes.rs"]
mod nodes;

#[path = "../../src/directory/ranking.rs"]
pub(crate) mod ranking;

#[path = "../../src/directory/record.rs"]
pub(crate) mod record;

#[path = "../../src/directory/registry.rs"]
pub(crate) mod registry;

/// Stands in for `src/directory/store/` (SQLite and PostgreSQL persistence).
pub(crate) mod store;

#[path = "../../src/directory/validate.rs"]
pub(crate) mod validate;
