//! The intent policy guard, `IICP-POLICY-001` (PROTOCOL.md §3).
//!
//! Before any request is sent (client) or stored (directory), intents that the
//! public-mesh defaults refuse — the `prohibited` and `high_risk` categories of
//! `intent-risk-taxonomy.json` — are refused. Matching is a case-insensitive
//! substring search for each rule's fragments, all fragments at once (one
//! Aho-Corasick pass over the intent: every task a node runs, every submit and
//! every registration is checked, so the check costs one scan of the intent,
//! not one per fragment). The taxonomy is embedded from
//! `intent-risk-taxonomy.json` beside this file, a byte-for-byte copy of the
//! public file (`../shared/vectors/SOURCES.md` names its origin).

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use serde::Deserialize;
use std::cell::RefCell;
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

/// The fragments of some rules as one automaton, each pattern knowing its
/// rule's index in [`RULES`].
struct Fragments {
    automaton: AhoCorasick,
    rule_of: Vec<usize>,
}

impl Fragments {
    /// The fragments of the rules `keep` selects.
    fn of(keep: impl Fn(&RiskRule) -> bool) -> Self {
        let mut patterns = Vec::new();
        let mut rule_of = Vec::new();
        for (i, rule) in RULES.iter().enumerate().filter(|(_, r)| keep(r)) {
            for fragment in &rule.fragments {
                patterns.push(fragment.as_str());
                rule_of.push(i);
            }
        }
        // A contiguous NFA rather than the DFA the builder would pick: the haystacks are
        // intent URNs of a few dozen bytes, where the two search alike, and the DFA of
        // the refused rules alone held 231 KB, half of an idle node's heap (issue 17).
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns)
            .expect("the taxonomy's fragments build an automaton");
        Self { automaton, rule_of }
    }

    /// The first rule (in taxonomy order) with a fragment in `intent`.
    fn first_rule(&self, intent: &str) -> Option<&'static RiskRule> {
        self.automaton
            .find_overlapping_iter(intent)
            .map(|m| self.rule_of[m.pattern().as_usize()])
            .min()
            .map(|i| &RULES[i])
    }
}

/// Every rule's fragments.
static ALL: LazyLock<Fragments> = LazyLock::new(|| Fragments::of(|_| true));
/// The fragments of the refused categories' rules.
static REFUSED: LazyLock<Fragments> = LazyLock::new(|| Fragments::of(|r| r.category.is_refused()));

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
    ALL.first_rule(intent)
}

/// Refuses intents matching any rule of a refused category, whatever the
/// order of the rules; allows everything else.
pub fn check_intent_policy(intent: &str) -> Result<(), PolicyViolation> {
    if LAST_ALLOWED.with_borrow(|last| last == intent) {
        return Ok(());
    }
    match REFUSED.first_rule(intent) {
        Some(rule) => Err(PolicyViolation {
            category: rule.category,
            rule_id: rule.rule_id.clone(),
            label: rule.label.clone(),
        }),
        None => {
            if intent.len() <= MEMO_MAX_LEN {
                LAST_ALLOWED.with_borrow_mut(|last| {
                    last.clear();
                    last.push_str(intent);
                });
            }
            Ok(())
        }
    }
}

/// Longest intent [`LAST_ALLOWED`] keeps (an intent URN is far shorter).
const MEMO_MAX_LEN: usize = 256;

thread_local! {
    /// The last intent this thread found allowed. A client submits one
    /// intent over and over and a node serves a few, so a comparison
    /// usually replaces the automaton's pass (issue 17). The rules are
    /// built into the binary: an intent allowed once stays allowed.
    static LAST_ALLOWED: RefCell<String> = const { RefCell::new(String::new()) };
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

    /// The memo of the last allowed intent never lets a refused one through,
    /// whatever was allowed just before it.
    #[test]
    fn the_allowed_memo_never_allows_a_refused_intent() {
        let allowed = "urn:iicp:intent:llm:chat:v1";
        let refused = "urn:iicp:intent:social-scoring:rank:v1";
        for _ in 0..3 {
            assert!(check_intent_policy(allowed).is_ok());
            assert!(check_intent_policy(allowed).is_ok());
            assert!(check_intent_policy(refused).is_err());
            assert!(check_intent_policy(refused).is_err());
        }
        assert!(check_intent_policy("").is_ok());
        assert!(check_intent_policy(refused).is_err());
    }

    /// The rules' definition, one fragment at a time.
    fn reference(intent: &str, refused_only: bool) -> Option<&'static str> {
        let lower = intent.to_ascii_lowercase();
        RULES
            .iter()
            .filter(|r| !refused_only || r.category.is_refused())
            .find(|r| r.fragments.iter().any(|f| lower.contains(f.as_str())))
            .map(|r| r.rule_id.as_str())
    }

    #[test]
    fn the_automaton_agrees_with_the_rules_for_every_fragment() {
        let fragments: Vec<&str> = RULES
            .iter()
            .flat_map(|r| r.fragments.iter().map(String::as_str))
            .collect();
        let mut intents = vec![
            "urn:iicp:intent:llm:chat:v1".to_owned(),
            "urn:iicp:intent:llm:embedding:v1".to_owned(),
        ];
        for (i, f) in fragments.iter().enumerate() {
            intents.push(format!("urn:iicp:intent:{f}:run:v1"));
            intents.push(format!("urn:iicp:intent:x:{}:v1", f.to_ascii_uppercase()));
            // Two fragments in one intent, in both orders: the first rule wins.
            let g = fragments[(i * 7 + 3) % fragments.len()];
            intents.push(format!("urn:iicp:intent:{f}-{g}:v1"));
            intents.push(format!("urn:iicp:intent:{g}-{f}:v1"));
        }
        for intent in &intents {
            assert_eq!(
                classify_intent(intent).map(|r| r.rule_id.as_str()),
                reference(intent, false),
                "{intent}"
            );
            assert_eq!(
                check_intent_policy(intent).err().map(|v| v.rule_id),
                reference(intent, true).map(str::to_owned),
                "{intent}"
            );
        }
    }

    #[test]
    fn matching_ignores_case() {
        assert!(check_intent_policy("urn:iicp:intent:CSAM:generate:v1").is_err());
    }
}
