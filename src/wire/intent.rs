//! Intent URNs (PROTOCOL.md §3).
//!
//! Four different regexes are in use across the reference code; we follow the
//! registry's own pattern (`intent-registry-v1.4.json`), the only one that
//! accepts all 17 registered intents and `x.<vendor>` custom intents. It
//! already excludes `+modifier` suffixes (deprecated, must be rejected) and
//! upper case (matching is exact and case-sensitive).

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// `urn:iicp:intent:llm:chat:v1`, the intent `chat()` uses.
pub const LLM_CHAT_V1: &str = "urn:iicp:intent:llm:chat:v1";
/// `urn:iicp:intent:llm:completion:v1`.
pub const LLM_COMPLETION_V1: &str = "urn:iicp:intent:llm:completion:v1";
/// `urn:iicp:intent:llm:embedding:v1`, advertised for models whose name contains `embed`.
pub const LLM_EMBEDDING_V1: &str = "urn:iicp:intent:llm:embedding:v1";

/// Longest URN we accept; the registry sets no bound, 255 matches the
/// capability string limit of PROTOCOL.md §1.3.
const MAX_LEN: usize = 255;

static REGISTRY_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^urn:iicp:intent:[a-z0-9_.-]+(?::[a-z0-9_./-]+)*:v[1-9][0-9]*$")
        .expect("static regex")
});

/// Why a string is not an intent URN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    /// The string is empty.
    #[error("intent is empty")]
    Empty,
    /// Longer than 255 bytes.
    #[error("intent is longer than {MAX_LEN} bytes")]
    TooLong,
    /// A deprecated `+modifier` suffix (semantics §1.5).
    #[error("intent `{0}` carries a `+` modifier, which IICP no longer allows")]
    Modifier(String),
    /// Anything else that does not match the registry grammar.
    #[error(
        "intent `{0}` does not match urn:iicp:intent:<domain>:<action>:v<N> \
         (lower case; custom intents use x.<vendor> as the domain)"
    )]
    Malformed(String),
}

/// A validated intent URN such as `urn:iicp:intent:llm:chat:v1`.
///
/// The common intents are typed constants, usable wherever an intent is
/// taken: `TaskRequest::new(IntentUrn::LLM_CHAT_V1, payload)`,
/// `client.discover(IntentUrn::LLM_CHAT_V1, None, None)`. Any other intent
/// comes from [`IntentUrn::parse`].
///
/// ```
/// use iicp_client::IntentUrn;
/// assert_eq!(IntentUrn::LLM_CHAT_V1.as_str(), "urn:iicp:intent:llm:chat:v1");
/// let custom = IntentUrn::parse("urn:iicp:intent:x.acme:summarize:v1")?;
/// assert!(custom.is_custom());
/// # Ok::<(), iicp_client::wire::IntentError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IntentUrn(Cow<'static, str>);

impl IntentUrn {
    /// `urn:iicp:intent:llm:chat:v1`, the intent `chat()` uses.
    pub const LLM_CHAT_V1: Self = Self(Cow::Borrowed(LLM_CHAT_V1));
    /// `urn:iicp:intent:llm:completion:v1`.
    pub const LLM_COMPLETION_V1: Self = Self(Cow::Borrowed(LLM_COMPLETION_V1));
    /// `urn:iicp:intent:llm:embedding:v1`.
    pub const LLM_EMBEDDING_V1: Self = Self(Cow::Borrowed(LLM_EMBEDDING_V1));

    /// Validates `s` against the registry grammar.
    pub fn parse(s: &str) -> Result<Self, IntentError> {
        // The common intents: no regex, no allocation, and clones are free.
        for known in [
            Self::LLM_CHAT_V1,
            Self::LLM_COMPLETION_V1,
            Self::LLM_EMBEDDING_V1,
        ] {
            if s == known.as_str() {
                return Ok(known);
            }
        }
        if s.is_empty() {
            return Err(IntentError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(IntentError::TooLong);
        }
        if s.contains('+') {
            return Err(IntentError::Modifier(s.to_owned()));
        }
        if !REGISTRY_PATTERN.is_match(s) {
            return Err(IntentError::Malformed(s.to_owned()));
        }
        Ok(Self(Cow::Owned(s.to_owned())))
    }

    /// The URN text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `urn:iicp:intent:x.<vendor>:…` intents.
    pub fn is_custom(&self) -> bool {
        self.0["urn:iicp:intent:".len()..].starts_with("x.")
    }
}

impl fmt::Display for IntentUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IntentUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntentUrn({})", self.0)
    }
}

impl FromStr for IntentUrn {
    type Err = IntentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for IntentUrn {
    type Error = IntentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for IntentUrn {
    type Error = IntentError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

/// An intent where a `String` is taken, e.g. `NodeConfig { intent:
/// IntentUrn::LLM_CHAT_V1.into(), .. }`.
impl From<IntentUrn> for String {
    fn from(intent: IntentUrn) -> Self {
        intent.0.into_owned()
    }
}

/// An intent reads as its URN text, so `&intent` passes where `&str` is expected.
impl std::ops::Deref for IntentUrn {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for IntentUrn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for IntentUrn {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for IntentUrn {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for IntentUrn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_custom_and_slash_actions() {
        for ok in [
            LLM_CHAT_V1,
            "urn:iicp:intent:translate:v1",
            "urn:iicp:intent:mcp:tools/call:v1",
            "urn:iicp:intent:x.acme:summarize:v2",
            "urn:iicp:intent:embedding:multimodal:v10",
        ] {
            IntentUrn::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_modifiers_case_and_shape_errors() {
        assert!(matches!(
            IntentUrn::parse("urn:iicp:intent:llm:chat:v1+stream"),
            Err(IntentError::Modifier(_))
        ));
        for bad in [
            "",
            "URN:iicp:intent:llm:chat:v1",
            "urn:iicp:intent:LLM:chat:v1",
            "urn:iicp:intent:llm:chat",
            "urn:iicp:intent:llm:chat:v0",
            "urn:iicp:intent:llm:chat:1",
            "urn:openai:gpt4",
            "urn:iicp:intent:llm chat:v1",
            "urn:iicp:intent::v1",
            "urn:iicp:intent:llm:chat:v1\n",
        ] {
            assert!(IntentUrn::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            IntentUrn::parse(&format!("urn:iicp:intent:{}:v1", "a".repeat(300))),
            Err(IntentError::TooLong)
        );
    }

    #[test]
    fn the_typed_constants_are_valid_urns() {
        for c in [
            IntentUrn::LLM_CHAT_V1,
            IntentUrn::LLM_COMPLETION_V1,
            IntentUrn::LLM_EMBEDDING_V1,
        ] {
            assert_eq!(IntentUrn::parse(c.as_str()), Ok(c.clone()));
            assert_eq!(String::from(c.clone()), c.as_str());
        }
    }

    #[test]
    fn custom_intents_are_recognised() {
        assert!(
            IntentUrn::parse("urn:iicp:intent:x.acme:do:v1")
                .unwrap()
                .is_custom()
        );
        assert!(!IntentUrn::parse(LLM_CHAT_V1).unwrap().is_custom());
    }

    #[test]
    fn serde_validates_on_the_way_in() {
        let ok: IntentUrn = serde_json::from_str("\"urn:iicp:intent:llm:chat:v1\"").unwrap();
        assert_eq!(ok, LLM_CHAT_V1);
        assert!(serde_json::from_str::<IntentUrn>("\"urn:iicp:intent:Bad:v1\"").is_err());
    }
}
