//! In-process embedding throughput and latency of `engine::encoder`, printed as JSON.
//!
//! Measures what `bench/embeddings/run.sh` compares with sentence-transformers: sentences
//! per second at a fixed batch size over the mixed and long corpora (tokenisation
//! included, as `SentenceTransformer.encode` includes it), and single-sentence latency.
//!
//! ```text
//! cargo run --release -p engine --example embed_bench -- --threads 2 [--precision bf16]
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use engine::encoder::{Encoder, EncoderOptions, Precision};

struct Args {
    model: PathBuf,
    reference: PathBuf,
    threads: usize,
    batch_size: usize,
    rounds: usize,
    single_iterations: usize,
    precision: Precision,
}

fn parse_args() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = Args {
        model: root.join(".models/all-MiniLM-L6-v2"),
        reference: root.join("../shared/reference"),
        threads: 2,
        batch_size: 32,
        rounds: 3,
        single_iterations: 300,
        precision: Precision::F32,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => args.model = value.into(),
            "--reference" => args.reference = value.into(),
            "--threads" => args.threads = value.parse()?,
            "--batch-size" => args.batch_size = value.parse()?,
            "--rounds" => args.rounds = value.parse()?,
            "--single-iterations" => args.single_iterations = value.parse()?,
            "--precision" => args.precision = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn read_corpus(path: &PathBuf) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
    }
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| Ok(serde_json::from_str::<Line>(line)?.text))
        .collect()
}

/// Best of `rounds` passes over the corpus in batches of `batch_size`, in sentences/s.
fn throughput(
    encoder: &Encoder,
    corpus: &[String],
    batch_size: usize,
    rounds: usize,
) -> Result<f64> {
    let texts: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        for batch in texts.chunks(batch_size) {
            std::hint::black_box(encoder.embed(batch)?);
        }
        best = best.min(start.elapsed());
    }
    Ok(texts.len() as f64 / best.as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // candle's gemm splits each product into as many parts as RAYON_NUM_THREADS says;
    // match it to the encoder's pool. Single-threaded here, before any other thread.
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    let options = EncoderOptions {
        threads: Some(args.threads),
        precision: args.precision,
        ..EncoderOptions::default()
    };
    let load_start = Instant::now();
    let encoder = Encoder::load(&args.model, options)?;
    let load_seconds = load_start.elapsed().as_secs_f64();

    let mixed = read_corpus(&args.reference.join("corpus_mixed512.jsonl"))?;
    let long = read_corpus(&args.reference.join("corpus_long120.jsonl"))?;
    let count_tokens = |corpus: &[String]| -> Result<usize> {
        let texts: Vec<&str> = corpus.iter().map(String::as_str).collect();
        Ok(encoder.tokenize(&texts)?.iter().map(|e| e.ids.len()).sum())
    };
    let (mixed_tokens, long_tokens) = (count_tokens(&mixed)?, count_tokens(&long)?);

    // Warm-up: first-touch page faults and thread start-up are not what we measure.
    throughput(&encoder, &mixed[..64.min(mixed.len())], args.batch_size, 1)?;
    // `--rounds 0` measures latency only (for profiling).
    let (mixed_rate, long_rate) = if args.rounds == 0 {
        (f64::NAN, f64::NAN)
    } else {
        (
            throughput(&encoder, &mixed, args.batch_size, args.rounds)?,
            throughput(&encoder, &long, args.batch_size, args.rounds)?,
        )
    };

    let mut latencies_ms = Vec::with_capacity(args.single_iterations);
    for text in mixed.iter().cycle().take(args.single_iterations) {
        let start = Instant::now();
        std::hint::black_box(encoder.embed(&[text.as_str()])?);
        latencies_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    latencies_ms.sort_by(f64::total_cmp);

    let report = serde_json::json!({
        "implementation": format!("charter-engine-{}", args.precision.as_str()),
        "bf16_accelerated": engine::bf16::accelerated(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "load_seconds": load_seconds,
        "mixed512": {
            "sentences": mixed.len(),
            "tokens": mixed_tokens,
            "sentences_per_second": mixed_rate,
        },
        "long120": {
            "sentences": long.len(),
            "tokens": long_tokens,
            "sentences_per_second": long_rate,
        },
        "single_sentence_ms": {
            "p50": percentile(&latencies_ms, 0.50),
            "p99": percentile(&latencies_ms, 0.99),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
