//! What a node advertises: one capability per (intent, input modalities)
//! group, with modalities read from model names (PROTOCOL.md §2.6; the
//! seed's table).

use crate::wire::intent::LLM_EMBEDDING_V1;
use crate::wire::{Capability, IntentUrn, Modality};

/// Input modalities of a model, from its name: `vl`/`vision`/`llava` →
/// image, `audio`/`voxtral` → audio, `omni` → both; text always.
pub fn modalities_for_model(model: &str) -> Vec<Modality> {
    let name = model.to_ascii_lowercase();
    // `vl` only as a name part (qwen2-vl, -vl-7b), not inside words like "devlin".
    let vl = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| {
            part == "vl"
                || (part.starts_with("vl") && part[2..].chars().all(|c| c.is_ascii_digit()))
        });
    let image = vl || name.contains("vision") || name.contains("llava") || name.contains("omni");
    let audio = name.contains("audio") || name.contains("voxtral") || name.contains("omni");
    let mut out = vec![Modality::Text];
    if image {
        out.push(Modality::Image);
    }
    if audio {
        out.push(Modality::Audio);
    }
    out
}

/// The intent a model serves: a model whose name contains `embed` (any
/// case) serves the embedding intent, all others `default_intent`. Ollama
/// and friends list embedding and chat models side by side; this keeps an
/// embedding model out of chat discovery. [`capabilities`] warns when the
/// rule moves a model away from the configured intent.
pub fn intent_for_model(model: &str, default_intent: &IntentUrn) -> IntentUrn {
    if model.to_ascii_lowercase().contains("embed") {
        IntentUrn::parse(LLM_EMBEDDING_V1).expect("constant is a valid URN")
    } else {
        default_intent.clone()
    }
}

/// One capability per (intent, modalities) group, in first-seen order. With
/// no models, one text capability for `default_intent`.
pub fn capabilities(
    models: &[String],
    default_intent: &IntentUrn,
    max_tokens: Option<u64>,
) -> Vec<Capability> {
    let mut groups: Vec<(IntentUrn, Vec<Modality>, Vec<String>)> = Vec::new();
    for model in models {
        let intent = intent_for_model(model, default_intent);
        if intent != *default_intent {
            tracing::warn!(
                model = ?model,
                configured = %default_intent,
                advertised = %intent,
                "the model's name contains `embed`, so it is advertised for the embedding \
                 intent, not the configured one; rename it or serve it from an embedding node"
            );
        }
        let modalities = modalities_for_model(model);
        match groups
            .iter_mut()
            .find(|(i, m, _)| *i == intent && *m == modalities)
        {
            Some((_, _, names)) => names.push(model.clone()),
            None => groups.push((intent, modalities, vec![model.clone()])),
        }
    }
    if groups.is_empty() {
        groups.push((default_intent.clone(), vec![Modality::Text], Vec::new()));
    }
    groups
        .into_iter()
        .map(|(intent, modalities, models)| {
            let mut cap = Capability::new(intent, models);
            cap.input_modalities = Some(modalities);
            cap.max_tokens = max_tokens;
            cap
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Modality::{Audio, Image, Text};

    #[test]
    fn the_seed_modality_table() {
        for (model, want) in [
            ("qwen2-vl-7b", vec![Text, Image]),
            ("Qwen2.5-VL", vec![Text, Image]),
            ("llama3.2-vision", vec![Text, Image]),
            ("llava:13b", vec![Text, Image]),
            ("whisper-audio", vec![Text, Audio]),
            ("voxtral-mini", vec![Text, Audio]),
            ("qwen2.5-omni", vec![Text, Image, Audio]),
            ("phi3:mini", vec![Text]),
            ("devlin-7b", vec![Text]),
        ] {
            assert_eq!(modalities_for_model(model), want, "{model}");
        }
    }

    #[test]
    fn grouping_by_intent_and_modalities() {
        let chat = IntentUrn::parse(crate::wire::intent::LLM_CHAT_V1).unwrap();
        let models: Vec<String> = ["phi3", "llama3", "llava", "nomic-embed-text"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let caps = capabilities(&models, &chat, Some(4096));
        assert_eq!(caps.len(), 3);
        assert_eq!(caps[0].models, vec!["phi3", "llama3"]);
        assert_eq!(caps[0].input_modalities, Some(vec![Text]));
        assert_eq!(caps[1].models, vec!["llava"]);
        assert_eq!(caps[1].input_modalities, Some(vec![Text, Image]));
        assert_eq!(caps[2].intent.as_str(), LLM_EMBEDDING_V1);
        assert_eq!(caps[2].max_tokens, Some(4096));
        let none = capabilities(&[], &chat, None);
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].intent, chat);
    }
}
