//! Times one optimiser step of the tensor trainer on the seed loop (batch 1) and at
//! batch 256; `bench/train/run.sh` runs it beside the PyTorch program and prints a table.
//!
//! Output: one tab-separated line per case, `rust <case> <median µs/step> <best µs/step>`
//! over 15 timed passes (after one warm-up pass). The machine is shared, so the best pass
//! shows the code's speed and the median what a loaded machine gives.

use std::collections::HashMap;
use std::time::Instant;

use engine::tensor::{
    Dataset, LrSchedule, OptimizerConfig, TensorModel, TensorModelSpec, TrainConfig, Trainer,
    ValidSpec,
};
use serde_json::Value;

const SEED_SPEC: &str = r#"{"inputs": [{"name": "x", "shape": [10]}], "outputs": [{"name": "y", "shape": [10]}], "layers": [{"type": "linear", "name": "layer1", "in": 10, "out": 20}, {"type": "linear", "name": "layer2", "in": 20, "out": 10}], "loss": "mse"}"#;
/// Steps per timed run at batch 256, matching `torch_bench.py`.
const BIG_STEPS: usize = 100;
const REPEATS: usize = 15;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut reference = format!(
        "{}/../../../shared/reference/seed_mlp.json",
        env!("CARGO_MANIFEST_DIR")
    );
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reference" => {
                reference = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--reference needs a path"))?
            }
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: train_bench [--reference seed_mlp.json]"
            ),
        }
    }
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&reference)?)?;
    let spec = TensorModelSpec::parse(SEED_SPEC)?;
    let model = TensorModel::from_tensors(spec.clone(), &tensors(&json["initial_weights"]))?;
    let seed_data = Dataset::from_dense(
        &spec,
        floats(&json["x"]["data"]),
        floats(&json["y"]["data"]),
    )?;
    let big_data = synthetic(&spec, 256 * BIG_STEPS)?;

    let optimizers = [
        ("sgd", OptimizerConfig::sgd(0.01)),
        (
            "sgd_momentum",
            OptimizerConfig::Sgd {
                lr: 0.01,
                momentum: 0.9,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 1e-4,
            },
        ),
        ("adam", OptimizerConfig::adam(1e-3)),
    ];
    for (name, optimizer) in &optimizers {
        let (median, best) = time_steps(&model, &seed_data, optimizer, 1)?;
        println!("rust\t{name} batch=1\t{median:.3}\t{best:.3}");
    }
    for (name, optimizer) in &optimizers {
        let (median, best) = time_steps(&model, &big_data, optimizer, 256)?;
        println!("rust\t{name} batch=256\t{median:.3}\t{best:.3}");
    }
    Ok(())
}

/// Median and minimum over repeats of the mean µs per step of one epoch over `data`.
fn time_steps(
    model: &TensorModel,
    data: &Dataset,
    optimizer: &OptimizerConfig,
    batch: usize,
) -> anyhow::Result<(f64, f64)> {
    let config = TrainConfig {
        optimizer: optimizer.clone(),
        schedule: LrSchedule::Constant,
        batch_size: Some(batch),
        epochs: 1,
        shuffle: false,
        seed: 0,
        validation_split: 0.0,
        early_stopping: None,
        max_grad_norm: None,
    };
    let mut samples = Vec::with_capacity(REPEATS);
    for repeat in 0..=REPEATS {
        // Setup (copying the model and data) is outside the timed region, as in PyTorch.
        let mut trainer = Trainer::new(model.clone(), data.clone(), config.clone())?;
        let steps = data.n_rows().div_ceil(batch);
        let mut loss_sum = 0.0;
        let start = Instant::now();
        for _ in 0..steps {
            if let Some(engine::tensor::TrainEvent::Step(step)) = trainer.next_event()? {
                loss_sum += step.loss;
            }
        }
        let elapsed = start.elapsed();
        std::hint::black_box(loss_sum);
        // The first run warms caches and the allocator, like PyTorch's warm-up.
        if repeat > 0 {
            samples.push(elapsed.as_secs_f64() * 1e6 / steps as f64);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], samples[0]))
}

/// Deterministic pseudo-random data (the values do not matter for timing).
fn synthetic(spec: &ValidSpec, rows: usize) -> anyhow::Result<Dataset> {
    let mut state = 1u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let x = (0..rows * 10).map(|_| next()).collect();
    let y = (0..rows * 10).map(|_| next()).collect();
    Ok(Dataset::from_dense(spec, x, y)?)
}

fn tensors(weights: &Value) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    weights
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, t)| {
            let shape = t["shape"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|d| d as usize)
                .collect();
            (name.clone(), (shape, floats(&t["data"])))
        })
        .collect()
}

fn floats(value: &Value) -> Vec<f32> {
    match value {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN) as f32],
        _ => Vec::new(),
    }
}
