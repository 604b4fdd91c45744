//! Sentence encoders on a worker: requests of many callers are embedded together.

use std::sync::Arc;

use engine::encoder::Encoder;

use crate::worker::BatchModel;

/// One request's token sequences; the reply holds one vector per sequence.
pub struct EmbedRequest {
    pub sequences: Vec<Vec<u32>>,
}

impl EmbedRequest {
    /// Splits the request, in order, into parts of at most `max_tokens` tokens each (a
    /// longer sequence goes alone), for [`crate::WorkerHandle::max_batch_cost`].
    pub fn split(self, max_tokens: usize) -> Vec<EmbedRequest> {
        // Most requests fit one batch: hand them on as they are.
        let tokens: usize = self.sequences.iter().map(Vec::len).sum();
        if tokens <= max_tokens {
            return if self.sequences.is_empty() {
                Vec::new()
            } else {
                vec![self]
            };
        }
        let mut parts = Vec::new();
        let mut part = Vec::new();
        let mut tokens = 0;
        for sequence in self.sequences {
            if !part.is_empty() && tokens + sequence.len() > max_tokens {
                parts.push(EmbedRequest {
                    sequences: std::mem::take(&mut part),
                });
                tokens = 0;
            }
            tokens += sequence.len();
            part.push(sequence);
        }
        if !part.is_empty() {
            parts.push(EmbedRequest { sequences: part });
        }
        parts
    }
}

/// An [`Encoder`] as a [`BatchModel`]: all sequences of a batch of requests go through
/// one padding-free forward pass, then the vectors are handed back per request.
pub struct EncoderModel {
    encoder: Arc<Encoder>,
}

impl EncoderModel {
    pub fn new(encoder: Arc<Encoder>) -> Self {
        Self { encoder }
    }
}

impl BatchModel for EncoderModel {
    type Request = EmbedRequest;
    type Response = Vec<Vec<f32>>;

    fn cost(request: &EmbedRequest) -> usize {
        request.sequences.iter().map(Vec::len).sum()
    }

    fn run(&mut self, requests: Vec<EmbedRequest>) -> Vec<Result<Vec<Vec<f32>>, String>> {
        let all: Vec<&[u32]> = requests
            .iter()
            .flat_map(|r| r.sequences.iter().map(Vec::as_slice))
            .collect();
        match self.encoder.embed_tokens(&all) {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                requests
                    .iter()
                    .map(|r| Ok(vectors.by_ref().take(r.sequences.len()).collect()))
                    .collect()
            }
            // One bad request must not fail its batch-mates: retry each on its own.
            Err(_) if requests.len() > 1 => requests
                .iter()
                .map(|r| {
                    self.encoder
                        .embed_tokens(&r.sequences)
                        .map_err(|e| e.to_string())
                })
                .collect(),
            Err(error) => vec![Err(error.to_string())],
        }
    }

    fn warm_up(&mut self) {
        let _ = self.encoder.embed(&["warm up"]);
    }
}

#[cfg(test)]
mod tests {
    use super::EmbedRequest;

    #[test]
    fn requests_split_in_order_within_the_budget() {
        let lengths = [3, 4, 2, 9, 1, 1, 5];
        let request = EmbedRequest {
            sequences: lengths
                .iter()
                .enumerate()
                .map(|(i, &n)| vec![i as u32; n])
                .collect(),
        };
        let parts = request.split(6);
        let shape: Vec<Vec<usize>> = parts
            .iter()
            .map(|part| part.sequences.iter().map(Vec::len).collect())
            .collect();
        // 3+4 > 6; 4+2; 9 alone (longer than the budget); 1+1 then +5 > 6; 5.
        assert_eq!(
            shape,
            vec![vec![3], vec![4, 2], vec![9], vec![1, 1], vec![5]]
        );
        let order: Vec<u32> = parts
            .iter()
            .flat_map(|part| part.sequences.iter().map(|s| s[0]))
            .collect();
        assert_eq!(order, (0..7).collect::<Vec<u32>>());
        assert!(EmbedRequest { sequences: vec![] }.split(6).is_empty());
    }
}
