//! The models the mesh offers for chat, for `GET /v1/models` and
//! `GET /api/tags`: the union of the `models` of the nodes a discover lists,
//! kept for the directory's `Cache-Control: max-age` in the client's
//! [`DiscoveryCache`] (on the crate's one TTL cache type); an answer without
//! max-age is not kept.

use crate::client::IicpClient;
use crate::client::discovery::DiscoveryCache;
use crate::error::Result;
use crate::wire::IntentUrn;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The cached discover answer behind the model list.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    cache: DiscoveryCache,
}

const KEY: &str = "chat-models";

impl Catalog {
    /// The chat models on the mesh, sorted, each once.
    pub async fn chat_models(&self, client: &IicpClient) -> Result<Vec<String>> {
        let list = match self.cache.get(KEY) {
            Some(list) => list,
            None => {
                let (list, max_age) = client.discover_with_max_age(IntentUrn::LLM_CHAT_V1).await?;
                let list = Arc::new(list);
                if let Some(ttl) = max_age {
                    self.cache.put(KEY.into(), list.clone(), ttl);
                }
                list
            }
        };
        let models: BTreeSet<&str> = list
            .nodes
            .iter()
            .flat_map(|n| n.models.iter())
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
            .collect();
        Ok(models.into_iter().map(str::to_owned).collect())
    }
}
