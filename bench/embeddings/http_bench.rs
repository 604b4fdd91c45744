//! HTTP side of the embeddings benchmark: concurrent keep-alive clients post batches
//! of sentences to a running `charter serve`, then one client measures single-sentence
//! latency. Prints one JSON report like the engine's `embed_bench`.
//!
//! cargo run --release -p charter --example http_bench -- ADDR KEY REFERENCE_DIR \
//!     [--clients N] [--batch-size N] [--rounds N]

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Client {
    stream: BufReader<TcpStream>,
    addr: String,
    key: String,
}

impl Client {
    async fn connect(addr: &str, key: &str) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        Client {
            stream: BufReader::new(stream),
            addr: addr.to_owned(),
            key: key.to_owned(),
        }
    }

    /// Posts one embeddings request and returns the status.
    async fn embed(&mut self, texts: &[String]) -> u16 {
        let body = serde_json::json!({"model": "minilm", "input": texts}).to_string();
        let request = format!(
            "POST /v1/embeddings HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.key,
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.expect("body");
        status
    }
}

fn corpus(dir: &str, file: &str) -> Vec<String> {
    std::fs::read_to_string(format!("{dir}/{file}"))
        .expect("corpus")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Sentences per second with `clients` clients sharing the corpus in batches; best of rounds.
async fn throughput(
    addr: &str,
    key: &str,
    texts: &[String],
    clients: usize,
    batch: usize,
    rounds: usize,
) -> f64 {
    let batches: Vec<Vec<String>> = texts.chunks(batch).map(<[String]>::to_vec).collect();
    let mut best = 0f64;
    for _ in 0..rounds {
        let queue = std::sync::Arc::new(std::sync::Mutex::new(batches.clone()));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (queue, addr, key) = (queue.clone(), addr.to_owned(), key.to_owned());
                tokio::spawn(async move {
                    let mut client = Client::connect(&addr, &key).await;
                    loop {
                        let Some(batch) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        assert_eq!(client.embed(&batch).await, 200);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        best = best.max(texts.len() as f64 / started.elapsed().as_secs_f64());
    }
    best
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, key, reference) = (&args[1], &args[2], &args[3]);
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (clients, batch, rounds) = (
        flag("--clients", 4),
        flag("--batch-size", 32),
        flag("--rounds", 3),
    );
    let mixed = corpus(reference, "corpus_mixed512.jsonl");
    let long = corpus(reference, "corpus_long120.jsonl");
    // Warm up connections and the model.
    throughput(addr, key, &mixed[..64], clients, batch, 1).await;
    let mixed_rate = throughput(addr, key, &mixed, clients, batch, rounds).await;
    let long_rate = throughput(addr, key, &long, clients, batch, rounds).await;
    let mut client = Client::connect(addr, key).await;
    let mut latencies: Vec<Duration> = Vec::new();
    for text in mixed.iter().take(200) {
        let started = Instant::now();
        assert_eq!(client.embed(std::slice::from_ref(text)).await, 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let report = serde_json::json!({
        "implementation": format!("charter HTTP ({clients} clients)"),
        "mixed512": {"sentences_per_second": mixed_rate},
        "long120": {"sentences_per_second": long_rate},
        "single_sentence_ms": {"p50": pct(0.5), "p99": pct(0.99)},
    });
    println!("{report}");
}
