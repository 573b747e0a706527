//! The README quickstart: one chat through the IICP mesh.
//!
//! ```sh
//! cargo run --example quickstart                      # the public directory
//! IICP_DIRECTORY_URL=http://127.0.0.1:8020/api \
//! IICP_PROXY_ALLOW_LOOPBACK_NODES=1 cargo run --example quickstart   # a local mesh
//! ```
//!
//! `IICP_DIRECTORY_URL` names the directory (default: the public one);
//! `IICP_PROXY_ALLOW_LOOPBACK_NODES=1` lets the client use nodes on this
//! machine; `IICP_PROMPT` replaces the question.

use iicp_client::{ChatMessage, ChatOptions, ClientConfig, IicpClient};

#[tokio::main]
async fn main() -> iicp_client::Result<()> {
    let mut config = ClientConfig::default();
    if let Ok(url) = std::env::var("IICP_DIRECTORY_URL") {
        config.directory_url = url;
    }
    let question = std::env::var("IICP_PROMPT").unwrap_or_else(|_| "What is IICP?".into());
    // The library reads no environment variable by itself; `with_env` lets
    // IICP_PROXY_ALLOW_LOOPBACK_NODES and the other client variables in.
    let client = IicpClient::builder(config).with_env().build()?;
    let reply = client
        .chat(
            vec![
                ChatMessage {
                    role: "system".into(),
                    content: "You are a helpful assistant.".into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: question.into(),
                },
            ],
            Some(ChatOptions {
                timeout_ms: Some(30_000),
                ..Default::default()
            }),
        )
        .await?;
    println!("{}", reply.choices[0].message.content);
    Ok(())
}
