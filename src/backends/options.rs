//! Backend kinds and their options.

use crate::secret::Secret;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The engines a node can sit in front of (`--backend-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Any OpenAI-compatible server: Ollama, LM Studio, …
    OpenaiCompat,
    /// vLLM's OpenAI server.
    Vllm,
    /// llama.cpp's llama-server.
    Llamacpp,
    /// Anthropic's Messages API.
    Anthropic,
}

impl BackendKind {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenaiCompat => "openai_compat",
            Self::Vllm => "vllm",
            Self::Llamacpp => "llamacpp",
            Self::Anthropic => "anthropic",
        }
    }

    /// The base URL used when none is configured.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenaiCompat => "http://localhost:11434/v1",
            Self::Vllm => "http://localhost:8000/v1",
            Self::Llamacpp => "http://localhost:8080/v1",
            Self::Anthropic => "https://api.anthropic.com/v1",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai_compat" | "openai" | "ollama" => Ok(Self::OpenaiCompat),
            "vllm" => Ok(Self::Vllm),
            "llamacpp" | "llama.cpp" => Ok(Self::Llamacpp),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(format!(
                "unknown backend type `{other}` (expected openai_compat, vllm, llamacpp or anthropic)"
            )),
        }
    }
}

/// Where and how to reach the model server.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendOptions {
    /// Base URL, e.g. `http://localhost:11434/v1`; the kind's default when `None`.
    pub base_url: Option<String>,
    /// API key: Bearer for OpenAI-style engines, `x-api-key` for Anthropic.
    pub api_key: Option<Secret>,
    /// Model used when a task names none.
    pub model: Option<String>,
    /// Time limit of one backend call.
    pub timeout: Duration,
    /// Most tokens one answer may ask for: a larger `max_tokens` /
    /// `max_completion_tokens` is lowered to it, and Anthropic (which
    /// requires `max_tokens`) gets it when the task sets none.
    pub max_tokens: u64,
    /// Most answers one request may ask for (`n`, `best_of`).
    pub max_choices: u64,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: None,
            timeout: Duration::from_secs(120),
            max_tokens: super::limits::DEFAULT_MAX_TOKENS,
            max_choices: super::limits::DEFAULT_MAX_CHOICES,
        }
    }
}

impl BackendOptions {
    /// The cost limits every request is held to.
    pub fn limits(&self) -> super::limits::CostLimits {
        super::limits::CostLimits {
            max_tokens: self.max_tokens,
            max_choices: self.max_choices,
        }
    }

    /// The base URL for `kind`, without a trailing slash.
    pub fn base_for(&self, kind: BackendKind) -> String {
        self.base_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(kind.default_base_url())
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_engine() {
        let o = BackendOptions::default();
        assert_eq!(
            o.base_for(BackendKind::OpenaiCompat),
            "http://localhost:11434/v1"
        );
        assert_eq!(o.base_for(BackendKind::Vllm), "http://localhost:8000/v1");
        assert_eq!(
            o.base_for(BackendKind::Llamacpp),
            "http://localhost:8080/v1"
        );
        assert_eq!(
            o.base_for(BackendKind::Anthropic),
            "https://api.anthropic.com/v1"
        );
        let custom = BackendOptions {
            base_url: Some("http://h:1/v1/".into()),
            ..Default::default()
        };
        assert_eq!(custom.base_for(BackendKind::Vllm), "http://h:1/v1");
        assert_eq!("llamacpp".parse::<BackendKind>(), Ok(BackendKind::Llamacpp));
        assert!("gpt".parse::<BackendKind>().is_err());
        assert_eq!((o.max_tokens, o.max_choices), (4096, 1));
    }
}
