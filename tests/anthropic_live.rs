//! One chat against the real Anthropic API. It contacts api.anthropic.com, so it
//! runs only when asked: `.ci/run` runs it when `ANTHROPIC_API_KEY` is set, and
//! reports it as skipped otherwise. The translation itself is tested against a
//! local stand-in in `backends.rs`.

use iicp_client::backends::{self, BackendKind, BackendOptions};
use serde_json::json;

#[tokio::test]
#[ignore = "contacts api.anthropic.com; needs ANTHROPIC_API_KEY (run by .ci/run when set)"]
async fn live_anthropic_chat() {
    let key = std::env::var("ANTHROPIC_API_KEY").expect("ANTHROPIC_API_KEY is set for this test");
    let mut opts = BackendOptions {
        api_key: Some(key.into()),
        ..Default::default()
    };
    let probe = backends::build(BackendKind::Anthropic, opts.clone());
    let (models, _) = probe.probe().await.expect("the key lists models");
    let model = models
        .iter()
        .find(|m| m.contains("haiku"))
        .or(models.first())
        .expect("at least one model")
        .clone();
    opts.model = Some(model);
    let b = backends::build(BackendKind::Anthropic, opts);
    let reply = b
        .invoke(
            "urn:iicp:intent:llm:chat:v1",
            &json!({"messages": [{"role": "system", "content": "Answer with one word."},
                                 {"role": "user", "content": "Say hello."}], "max_tokens": 16}),
        )
        .await
        .expect("a reply");
    assert_eq!(reply["object"], "chat.completion");
    assert!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(reply["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);
}
