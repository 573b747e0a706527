//! The registry's records and the index discover reads: records in slots,
//! node id to slot, and intent to the slots of the nodes serving it.
//!
//! The index depends only on a registration's capabilities, which change
//! only when a record is inserted (a registration) or removed (deregister,
//! eviction, a proven re-registration replacing it); heartbeats mutate the
//! other fields in place through [`Nodes::get_mut`]. Both happen under the
//! registry's write lock, so the index is always in step with the records.

use super::record::NodeRecord;
use std::collections::{HashMap, HashSet};

/// Every record, and the slots serving each intent.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    slots: Vec<Option<NodeRecord>>,
    free: Vec<usize>,
    ids: HashMap<String, usize>,
    by_intent: HashMap<String, HashSet<usize>>,
}

impl Nodes {
    /// How many records are held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether `node_id` is held.
    pub fn contains_key(&self, node_id: &str) -> bool {
        self.ids.contains_key(node_id)
    }

    /// The record of `node_id`.
    pub fn get(&self, node_id: &str) -> Option<&NodeRecord> {
        self.ids
            .get(node_id)
            .and_then(|&slot| self.slots[slot].as_ref())
    }

    /// The record of `node_id`, to update fields other than `registration`
    /// (which the index is built from).
    pub fn get_mut(&mut self, node_id: &str) -> Option<&mut NodeRecord> {
        let slot = *self.ids.get(node_id)?;
        self.slots[slot].as_mut()
    }

    /// Every record, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &NodeRecord> {
        self.slots.iter().flatten()
    }

    /// The records of the nodes with a capability for `intent`, in no
    /// particular order.
    pub fn serving<'a>(&'a self, intent: &str) -> impl Iterator<Item = &'a NodeRecord> + 'a {
        self.by_intent
            .get(intent)
            .into_iter()
            .flatten()
            .filter_map(|&slot| self.slots[slot].as_ref())
    }

    /// Stores `record` under its id (replacing any record of that id) and
    /// fills its derived fields.
    pub fn insert(&mut self, mut record: NodeRecord) {
        record.refresh_derived();
        self.remove(&record.node_id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        for c in &record.registration.capabilities {
            self.by_intent
                .entry(c.intent.as_str().to_owned())
                .or_default()
                .insert(slot);
        }
        self.ids.insert(record.node_id.clone(), slot);
        self.slots[slot] = Some(record);
    }

    /// Removes and returns the record of `node_id`.
    pub fn remove(&mut self, node_id: &str) -> Option<NodeRecord> {
        let slot = self.ids.remove(node_id)?;
        let record = self.slots[slot].take()?;
        for c in &record.registration.capabilities {
            let intent = c.intent.as_str();
            if let Some(set) = self.by_intent.get_mut(intent) {
                set.remove(&slot);
                if set.is_empty() {
                    self.by_intent.remove(intent);
                }
            }
        }
        self.free.push(slot);
        Some(record)
    }
}

impl FromIterator<NodeRecord> for Nodes {
    fn from_iter<I: IntoIterator<Item = NodeRecord>>(iter: I) -> Self {
        let mut nodes = Nodes::default();
        for record in iter {
            nodes.insert(record);
        }
        nodes
    }
}
