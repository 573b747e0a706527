//! `iicp-node demo`: a whole IICP mesh in one process — a local directory,
//! provider nodes on loopback ports, and a consumer that discovers, selects
//! and submits — printing each step.

use crate::cli::DemoArgs;
use crate::echo;
use iicp_client::backends::{self, Backend, BackendKind, BackendOptions};
use iicp_client::directory::{Directory, DirectoryConfig};
use iicp_client::{
    ChatMessage, ChatOptions, ClientConfig, IicpClient, IicpError, IicpNode, NodeConfig,
    RunningNode,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGIONS: &[&str] = &[
    "eu-central",
    "us-east",
    "ap-south",
    "eu-west",
    "us-west",
    "sa-east",
    "af-south",
    "ap-east",
];
const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

/// Local LLM servers the demo looks for, on their usual ports.
const LOCAL_SERVERS: &[(BackendKind, &str, &str)] = &[
    (
        BackendKind::OpenaiCompat,
        "http://127.0.0.1:11434/v1",
        "Ollama",
    ),
    (
        BackendKind::Llamacpp,
        "http://127.0.0.1:8080/v1",
        "llama.cpp",
    ),
    (BackendKind::Vllm, "http://127.0.0.1:8000/v1", "vLLM"),
];

/// The backend the nodes will use, and how to describe it.
enum Choice {
    Echo,
    Model(Arc<dyn Backend>, String),
}

async fn choose_backend(args: &DemoArgs) -> Choice {
    let opts = |url: Option<String>| BackendOptions {
        base_url: url,
        model: args.model.clone(),
        api_key: std::env::var("IICP_BACKEND_API_KEY").ok().map(Into::into),
        timeout: Duration::from_secs(120),
        ..BackendOptions::default()
    };
    if let Some(t) = args.backend_type {
        return match t.engine() {
            None => Choice::Echo,
            Some(kind) => {
                let o = opts(args.backend_url.clone());
                let desc = format!("{kind} at {} (as asked)", o.base_for(kind));
                Choice::Model(backends::build(kind, o), desc)
            }
        };
    }
    for (kind, url, name) in LOCAL_SERVERS {
        let probe = backends::build(
            *kind,
            BackendOptions {
                timeout: Duration::from_millis(500),
                ..opts(Some((*url).into()))
            },
        );
        if let Ok((models, _)) = probe.probe().await {
            if !models.is_empty() {
                let desc = format!("{name} found at {url} (models: {})", models.join(", "));
                return Choice::Model(backends::build(*kind, opts(Some((*url).into()))), desc);
            }
        }
    }
    Choice::Echo
}

/// A latency as the demo prints it: whole µs below 1 ms (a loopback chat
/// takes a few hundred), else ms with one decimal.
fn latency(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

pub async fn run(args: DemoArgs) -> iicp_client::Result<()> {
    let started = Instant::now();
    println!(
        "IICP demo: a directory, {} provider node(s) and a consumer, all on this machine.",
        args.nodes
    );

    step(1, "Starting a local directory");
    let dir = Directory::start(
        DirectoryConfig {
            heartbeat_interval: Duration::from_secs(5),
            server_limits: args.server.limits(),
            ..DirectoryConfig::default()
        },
        "127.0.0.1:0".parse().expect("static address"),
    )
    .await?;
    println!(
        "    directory at {} (local mode: loopback nodes accepted)",
        dir.url()
    );

    step(2, "Choosing a backend");
    let choice = choose_backend(&args).await;
    match &choice {
        Choice::Echo => println!(
            "    no local LLM server answered on 11434, 8080 or 8000: using the built-in echo demo \
             backend (replies \"echo: <your message>\"). Pass --backend-type/--backend-url for a real model."
        ),
        Choice::Model(_, desc) => println!("    {desc}"),
    }

    step(3, &format!("Starting {} provider node(s)", args.nodes));
    let mut nodes: Vec<RunningNode> = Vec::new();
    for i in 0..args.nodes as usize {
        let config = NodeConfig {
            directory_url: dir.url(),
            host: "127.0.0.1".into(),
            port: 0,
            region: Some(REGIONS[i % REGIONS.len()].into()),
            models: match (&choice, &args.model) {
                (Choice::Echo, _) => vec![echo::MODEL.into()],
                (_, Some(m)) => vec![m.clone()],
                _ => Vec::new(),
            },
            server_limits: args.server.limits(),
            ..NodeConfig::default()
        };
        let node = match &choice {
            Choice::Echo => IicpNode::new(config).start(echo::handle).await?,
            Choice::Model(backend, _) => {
                IicpNode::new(config).start_backend(backend.clone()).await?
            }
        };
        let id = tokio::time::timeout(Duration::from_secs(15), node.registered())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                IicpError::InvalidConfig(
                    "a demo node did not register with the local directory".into(),
                )
            })?;
        println!(
            "    node {} at {} ({}) registered",
            &id[..8.min(id.len())],
            node.endpoint(),
            REGIONS[i % REGIONS.len()]
        );
        nodes.push(node);
    }

    let client = IicpClient::builder(ClientConfig {
        directory_url: dir.url(),
        timeout_ms: 120_000,
        region: Some(REGIONS[0].into()),
        node_token: None,
    })
    .allow_private_nodes(true)
    .build()?;

    step(
        4,
        &format!(
            "Discover: which nodes serve {CHAT}? (preferring region {})",
            REGIONS[0]
        ),
    );
    let t = Instant::now();
    let list = client.discover(CHAT, None, None).await?;
    println!("    {} node(s) in {}:", list.count, latency(t.elapsed()));
    for n in &list.nodes {
        println!(
            "      {}  score {:.3}  region {:<10}  {}",
            &n.node_id[..8.min(n.node_id.len())],
            n.score,
            n.region,
            n.endpoint
        );
    }

    step(5, &format!("Select and submit: chat \"{}\"", args.prompt));
    let t = Instant::now();
    let reply = client
        .chat(
            vec![ChatMessage::user(args.prompt.as_str())],
            Some(ChatOptions {
                model: args.model.clone(),
                ..Default::default()
            }),
        )
        .await?;
    let took = t.elapsed();
    let served_by = reply.node_id.clone().unwrap_or_default();
    println!(
        "    served by node {} in {} (task {})",
        &served_by[..8.min(served_by.len())],
        latency(took),
        reply.task_id
    );

    step(6, "Reply");
    println!("    {}", reply.choices[0].message.content);

    println!(
        "\nSummary: {} node(s) discovered, 1 chat served by {} in {}; demo took {} in all.",
        list.count,
        &served_by[..8.min(served_by.len())],
        latency(took),
        latency(started.elapsed())
    );

    if args.keep_running {
        let signal = iicp_client::node::shutdown_signal(); // before the lines below
        println!("\nThe mesh keeps running (Ctrl-C stops it). In another terminal:");
        println!("    iicp-node discover --directory-url {}", dir.url());
        println!("    iicp-node chat \"Hello\" --directory-url {}", dir.url());
        println!(
            "    iicp-node proxy --directory-url {}   # then OpenAI SDK code with base_url http://127.0.0.1:9483/v1",
            dir.url()
        );
        signal.await;
    }
    for node in nodes {
        node.shutdown().await;
    }
    dir.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::latency;
    use std::time::Duration;

    #[test]
    fn sub_millisecond_in_micros_else_millis_with_one_decimal() {
        assert_eq!(latency(Duration::ZERO), "0 µs");
        assert_eq!(latency(Duration::from_nanos(412_900)), "412 µs");
        assert_eq!(latency(Duration::from_micros(999)), "999 µs");
        assert_eq!(latency(Duration::from_millis(1)), "1.0 ms");
        assert_eq!(latency(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(latency(Duration::from_secs(2)), "2000.0 ms");
    }
}
