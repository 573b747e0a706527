//! Stands in for `src/directory/store/`, the optional SQLite or PostgreSQL
//! persistence of registrations (`--db`), which would bring rusqlite with a
//! bundled SQLite and tokio-postgres into the instrumented build. The
//! fuzzed registry runs without a store (`Registry::new(…, None, …)`, as
//! without `--db`), so `Store` has no values at all: the registry's calls
//! into it type-check and never run.

use super::record::NodeRecord;

/// No store: a type without values.
#[derive(Debug)]
pub(crate) enum Store {}

impl Store {
    pub fn upsert(&self, _record: &NodeRecord) {
        match *self {}
    }

    pub fn delete(&self, _node_id: &str) {
        match *self {}
    }

    pub fn close(&self) {
        match *self {}
    }

    pub fn is_failing(&self) -> bool {
        match *self {}
    }
}
