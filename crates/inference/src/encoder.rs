//! Sentence encoders on a worker: requests of many callers are embedded together.

use std::sync::Arc;

use engine::encoder::Encoder;

use crate::worker::BatchModel;

/// One request's token sequences; the reply holds one vector per sequence.
pub struct EmbedRequest {
    pub sequences: Vec<Vec<u32>>,
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
