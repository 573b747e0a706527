//! The intent policy guard, `IICP-POLICY-001` (PROTOCOL.md §3).
//!
//! Before any request is sent (client) or stored (directory), intents that the
//! public-mesh defaults refuse — the `prohibited` and `high_risk` categories of
//! `intent-risk-taxonomy.json` — are refused. Matching is a case-insensitive
//! substring search for each rule's fragments. The taxonomy is embedded from
//! `intent-risk-taxonomy.json` beside this file, a byte-for-byte copy of the
//! public file (`../shared/vectors/SOURCES.md` names its origin).

use serde::Deserialize;
use std::sync::LazyLock;

/// The error code of a policy refusal. Terminal: never retried.
pub const POLICY_CODE: &str = "IICP-POLICY-001";

const TAXONOMY_JSON: &str = include_str!("intent-risk-taxonomy.json");

/// Risk category of a taxonomy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCategory {
    /// Refused on the public mesh.
    Prohibited,
    /// Refused unless an explicit private compliance profile allows it.
    HighRisk,
    /// Allowed with notice metadata.
    TransparencyRisk,
    /// Allowed.
    MinimalOrGeneral,
}

impl RiskCategory {
    /// True for the categories the public-mesh default refuses.
    pub fn is_refused(self) -> bool {
        matches!(self, Self::Prohibited | Self::HighRisk)
    }
}

/// One rule of the taxonomy.
#[derive(Debug, Clone, Deserialize)]
pub struct RiskRule {
    /// Category of the rule.
    pub category: RiskCategory,
    /// Stable identifier, e.g. `eu-ai-act-social-scoring`.
    pub rule_id: String,
    /// Human label.
    pub label: String,
    /// Lower-case fragments matched as substrings of the intent.
    pub fragments: Vec<String>,
}

#[derive(Deserialize)]
struct Taxonomy {
    rules: Vec<RiskRule>,
}

static RULES: LazyLock<Vec<RiskRule>> = LazyLock::new(|| {
    serde_json::from_str::<Taxonomy>(TAXONOMY_JSON)
        .expect("embedded taxonomy parses")
        .rules
});

/// Why an intent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("intent refused by policy ({category:?} — {label}, rule {rule_id})")]
pub struct PolicyViolation {
    /// Category of the matching rule.
    pub category: RiskCategory,
    /// The matching rule's id.
    pub rule_id: String,
    /// The matching rule's label.
    pub label: String,
}

impl PolicyViolation {
    /// Always [`POLICY_CODE`].
    pub fn code(&self) -> &'static str {
        POLICY_CODE
    }
}

/// The first taxonomy rule whose fragment occurs in `intent`, if any.
pub fn classify_intent(intent: &str) -> Option<&'static RiskRule> {
    let lower = intent.to_ascii_lowercase();
    RULES
        .iter()
        .find(|rule| rule.fragments.iter().any(|f| lower.contains(f.as_str())))
}

/// Refuses intents matching any rule of a refused category, whatever the
/// order of the rules; allows everything else.
pub fn check_intent_policy(intent: &str) -> Result<(), PolicyViolation> {
    let lower = intent.to_ascii_lowercase();
    let refused = RULES.iter().find(|rule| {
        rule.category.is_refused() && rule.fragments.iter().any(|f| lower.contains(f.as_str()))
    });
    match refused {
        Some(rule) => Err(PolicyViolation {
            category: rule.category,
            rule_id: rule.rule_id.clone(),
            label: rule.label.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_prohibited_and_high_risk_allows_the_rest() {
        let v = check_intent_policy("urn:iicp:intent:social-scoring:rank:v1").unwrap_err();
        assert_eq!(v.category, RiskCategory::Prohibited);
        assert_eq!(v.code(), "IICP-POLICY-001");
        let v = check_intent_policy("urn:iicp:intent:credit:decision:v1").unwrap_err();
        assert_eq!(v.category, RiskCategory::HighRisk);
        assert!(check_intent_policy("urn:iicp:intent:llm:chat:v1").is_ok());
        // transparency_risk is allowed with notice, not refused
        assert_eq!(
            classify_intent("urn:iicp:intent:chatbot:reply:v1").map(|r| r.category),
            Some(RiskCategory::TransparencyRisk)
        );
        assert!(check_intent_policy("urn:iicp:intent:chatbot:reply:v1").is_ok());
    }

    #[test]
    fn matching_ignores_case() {
        assert!(check_intent_policy("urn:iicp:intent:CSAM:generate:v1").is_err());
    }
}
