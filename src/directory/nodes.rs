//! The registry's records and the index discover reads: records in slots,
//! node id to slot, per slot a small copy of what eligibility and the score
//! read ([`Hot`]), and per intent a dense array of the copies of the nodes
//! serving it, so a query walks one array instead of whole records.
//!
//! The intent index depends only on a registration's capabilities, which
//! change only when a record is inserted (a registration) or removed
//! (deregister, eviction, a proven re-registration replacing it). Heartbeats
//! change the other fields in place through [`Nodes::get_mut`] and then call
//! [`Nodes::refresh`]. All of it happens under the registry's write lock, so
//! the index is always in step with the records.

use super::record::NodeRecord;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// What discover reads of one node, copied out of its record.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hot {
    pub last_seen_ms: u64,
    pub reputation: f64,
    pub completed_tasks: u64,
    pub load: f64,
    pub price: Option<f64>,
    pub active_jobs: u32,
    pub max_concurrent: u32,
    /// Interned region (0: none declared).
    pub region: u32,
    /// Available by its last heartbeat and not awaiting its first.
    pub up: bool,
    /// Hidden whatever the query: an empty health list, or a backend
    /// draining or unavailable.
    pub hidden: bool,
    pub has_cx_key: bool,
    pub sdk_current: bool,
    /// One bit per served model: bit `id` for an interned model id below
    /// 63 (exact), bit 63 for any other (confirmed against the record).
    pub model_mask: u64,
    /// The slot of the record this is a copy of.
    pub slot: u32,
}

/// The bit of an interned model id in [`Hot::model_mask`].
pub(crate) fn model_bit(id: u32) -> u64 {
    1 << id.min(63)
}

/// Every record, and the slots serving each intent.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    slots: Vec<Option<NodeRecord>>,
    /// Per slot: its [`Hot`] entry (the master copy).
    hot: Vec<Hot>,
    /// Per slot: where its copies sit in `by_intent` (intent, position).
    places: Vec<Vec<(String, usize)>>,
    free: Vec<usize>,
    ids: HashMap<String, usize>,
    /// Intent to a dense copy of the [`Hot`] entries of the nodes serving
    /// it, so a query reads one contiguous array.
    by_intent: HashMap<String, Vec<Hot>>,
    /// Region name to (id, how many records declare it); ids from 1.
    regions: HashMap<String, (u32, usize)>,
    free_regions: Vec<u32>,
    next_region: u32,
    /// Served model name to (id, how many records serve it); the smallest
    /// free id is reused, so ids stay below 63 (exact mask bits) while the
    /// mesh serves fewer distinct models than that.
    models: HashMap<String, (u32, usize)>,
    model_names: Vec<String>,
    free_models: BinaryHeap<Reverse<u32>>,
    /// Per slot: the ids of the models it serves (its health list, else
    /// its capabilities' models), as counted in `models`.
    served: Vec<Vec<u32>>,
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

    /// The record in `slot` (a [`Hot::slot`] of [`Nodes::serving`]).
    pub fn at(&self, slot: usize) -> &NodeRecord {
        self.slots[slot].as_ref().expect("an occupied slot")
    }

    /// The interned id of `region`, when some node declares it.
    pub fn region_id(&self, region: &str) -> Option<u32> {
        self.regions.get(region).map(|&(id, _)| id)
    }

    /// The interned id of `model`, when some node serves it.
    pub fn model_id(&self, model: &str) -> Option<u32> {
        self.models.get(model).map(|&(id, _)| id)
    }

    /// Counts the models `record` serves and returns their ids and mask.
    fn intern_served(&mut self, record: &NodeRecord) -> (Vec<u32>, u64) {
        let served = record
            .health_models
            .as_deref()
            .unwrap_or(&record.derived.models);
        let mut ids: Vec<u32> = Vec::with_capacity(served.len());
        for name in served {
            let id = match self.models.get_mut(name.as_str()) {
                Some((id, _)) if ids.contains(id) => continue,
                Some((id, count)) => {
                    *count += 1;
                    *id
                }
                None => {
                    let id = match self.free_models.pop() {
                        Some(Reverse(id)) => id,
                        None => {
                            self.model_names.push(String::new());
                            u32::try_from(self.model_names.len() - 1).unwrap_or(u32::MAX)
                        }
                    };
                    if let Some(n) = self.model_names.get_mut(id as usize) {
                        n.clone_from(name);
                    }
                    self.models.insert(name.clone(), (id, 1));
                    id
                }
            };
            ids.push(id);
        }
        let mask = ids.iter().fold(0, |m, &id| m | model_bit(id));
        (ids, mask)
    }

    /// Uncounts models a record no longer serves.
    fn release_served(&mut self, ids: Vec<u32>) {
        for id in ids {
            let Some(name) = self.model_names.get(id as usize) else {
                continue;
            };
            if let Some((_, count)) = self.models.get_mut(name.as_str()) {
                *count -= 1;
                if *count == 0 {
                    self.models.remove(name.as_str());
                    self.free_models.push(Reverse(id));
                }
            }
        }
    }

    /// The [`Hot`] entries of the nodes with a capability for `intent`, in
    /// no particular order.
    pub fn serving(&self, intent: &str) -> &[Hot] {
        self.by_intent.get(intent).map_or(&[], Vec::as_slice)
    }

    /// Copies a record's discover fields into its [`Hot`] entries again,
    /// after a heartbeat changed them.
    pub fn refresh(&mut self, node_id: &str) {
        let Some(&slot) = self.ids.get(node_id) else {
            return;
        };
        let Some(record) = self.slots[slot].take() else {
            return;
        };
        let (ids, mask) = self.intern_served(&record);
        let old = std::mem::replace(&mut self.served[slot], ids);
        self.release_served(old);
        let hot = hot_of(&record, self.hot[slot].region, mask, slot);
        self.slots[slot] = Some(record);
        self.hot[slot] = hot;
        for (intent, pos) in &self.places[slot] {
            if let Some(list) = self.by_intent.get_mut(intent) {
                list[*pos] = hot;
            }
        }
    }

    fn intern_region(&mut self, record: &NodeRecord) -> u32 {
        let Some(name) = record.registration.region.as_deref() else {
            return 0;
        };
        if let Some((id, count)) = self.regions.get_mut(name) {
            *count += 1;
            return *id;
        }
        let id = self.free_regions.pop().unwrap_or_else(|| {
            self.next_region += 1;
            self.next_region
        });
        self.regions.insert(name.to_owned(), (id, 1));
        id
    }

    fn release_region(&mut self, record: &NodeRecord) {
        let Some(name) = record.registration.region.as_deref() else {
            return;
        };
        if let Some((id, count)) = self.regions.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                self.free_regions.push(*id);
                self.regions.remove(name);
            }
        }
    }

    /// Every record, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &NodeRecord> {
        self.slots.iter().flatten()
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
                self.hot.push(Hot::default());
                self.places.push(Vec::new());
                self.served.push(Vec::new());
                self.slots.len() - 1
            }
        };
        let region = self.intern_region(&record);
        let (ids, mask) = self.intern_served(&record);
        self.served[slot] = ids;
        let hot = hot_of(&record, region, mask, slot);
        self.hot[slot] = hot;
        let mut places: Vec<(String, usize)> = Vec::new();
        for c in &record.registration.capabilities {
            let intent = c.intent.as_str();
            if places.iter().any(|(i, _)| i == intent) {
                continue;
            }
            let list = self.by_intent.entry(intent.to_owned()).or_default();
            list.push(hot);
            places.push((intent.to_owned(), list.len() - 1));
        }
        self.places[slot] = places;
        self.ids.insert(record.node_id.clone(), slot);
        self.slots[slot] = Some(record);
    }

    /// Removes and returns the record of `node_id`.
    pub fn remove(&mut self, node_id: &str) -> Option<NodeRecord> {
        let slot = self.ids.remove(node_id)?;
        let record = self.slots[slot].take()?;
        self.release_region(&record);
        let served = std::mem::take(&mut self.served[slot]);
        self.release_served(served);
        for (intent, pos) in std::mem::take(&mut self.places[slot]) {
            let Some(list) = self.by_intent.get_mut(&intent) else {
                continue;
            };
            list.swap_remove(pos);
            if let Some(moved) = list.get(pos) {
                // The last entry took this position: tell its node.
                let moved = moved.slot as usize;
                if let Some(place) = self.places[moved].iter_mut().find(|(i, _)| *i == intent) {
                    place.1 = pos;
                }
            }
            if list.is_empty() {
                self.by_intent.remove(&intent);
            }
        }
        self.free.push(slot);
        Some(record)
    }
}

/// The [`Hot`] entry of `record`, whose region is interned as `region`.
fn hot_of(record: &NodeRecord, region: u32, model_mask: u64, slot: usize) -> Hot {
    let served = record
        .health_models
        .as_deref()
        .unwrap_or(&record.derived.models);
    let input = record.rank_input(true, served);
    Hot {
        last_seen_ms: record.last_seen_ms,
        reputation: record.reputation,
        completed_tasks: record.completed_tasks,
        load: input.load,
        price: input.price,
        active_jobs: input.active_jobs,
        max_concurrent: input.max_concurrent,
        region,
        up: record.available && !record.awaiting_first_heartbeat,
        hidden: matches!(record.health_models.as_deref(), Some([]))
            || matches!(
                record.backend_state.as_deref(),
                Some("draining" | "unavailable")
            ),
        has_cx_key: input.has_cx_key,
        sdk_current: input.sdk_current,
        model_mask,
        slot: u32::try_from(slot).unwrap_or(u32::MAX),
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
