//! The intents a node serves, each with the verdict of the intent policy
//! ([`check_intent_policy`]) worked out once when the node starts instead of
//! for every task (a served intent's verdict cannot change while it runs).

use crate::wire::{IntentUrn, PolicyViolation, check_intent_policy};

/// Served intents and their policy verdicts, in the order configured.
#[derive(Debug)]
pub(crate) struct ServedIntents(Vec<(IntentUrn, Result<(), PolicyViolation>)>);

impl ServedIntents {
    /// `intents`, each checked against the policy.
    pub fn new(intents: Vec<IntentUrn>) -> Self {
        Self(
            intents
                .into_iter()
                .map(|intent| {
                    let verdict = check_intent_policy(intent.as_str());
                    (intent, verdict)
                })
                .collect(),
        )
    }

    /// Whether the node serves `intent` (the native session's discover).
    #[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))]
    pub fn contains(&self, intent: &IntentUrn) -> bool {
        self.verdict(intent).is_some()
    }

    /// The policy's verdict on `intent`, when the node serves it.
    pub fn verdict(&self, intent: &IntentUrn) -> Option<&Result<(), PolicyViolation>> {
        self.0.iter().find(|(i, _)| i == intent).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_the_policys_and_only_for_served_intents() {
        let urn = |s: &str| IntentUrn::parse(s).unwrap();
        let served = ServedIntents::new(vec![
            urn("urn:iicp:intent:llm:chat:v1"),
            urn("urn:iicp:intent:credit:decision:v1"),
        ]);
        assert_eq!(
            served.verdict(&urn("urn:iicp:intent:llm:chat:v1")),
            Some(&Ok(()))
        );
        let refused = served
            .verdict(&urn("urn:iicp:intent:credit:decision:v1"))
            .unwrap();
        assert_eq!(
            refused.as_ref().unwrap_err(),
            &check_intent_policy("urn:iicp:intent:credit:decision:v1").unwrap_err()
        );
        assert!(!served.contains(&urn("urn:iicp:intent:llm:completion:v1")));
        assert!(
            served
                .verdict(&urn("urn:iicp:intent:llm:completion:v1"))
                .is_none()
        );
    }
}
