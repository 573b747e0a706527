//! The models a node advertises, shared between the lifecycle (which
//! re-registers when the backend's list changes) and the backend handler
//! (which serves only these).

use std::sync::{Arc, RwLock};

/// The node's advertised model list; cheap to clone, all clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdvertisedModels(Arc<RwLock<Arc<[String]>>>);

impl AdvertisedModels {
    /// A list starting as `models`.
    pub fn new(models: &[String]) -> Self {
        Self(Arc::new(RwLock::new(models.into())))
    }

    /// The current list.
    pub fn get(&self) -> Arc<[String]> {
        crate::sync::read(&self.0).clone()
    }

    /// Replaces the list (the node registered new capabilities).
    pub fn set(&self, models: &[String]) {
        *crate::sync::write(&self.0) = models.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_list() {
        let a = AdvertisedModels::new(&["m1".to_owned()]);
        let b = a.clone();
        b.set(&["m2".to_owned(), "m3".to_owned()]);
        assert_eq!(&*a.get(), ["m2".to_owned(), "m3".to_owned()]);
    }
}
