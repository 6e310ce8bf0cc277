//! The in-process backend: a Llama-family chat model in a GGUF file, run on the CPU by candle.
//!
//! - Weights: `candle_transformers::models::quantized_llama`. Types candle has no SIMD kernel
//!   for (Q4_1, Q5_x, ...) are re-quantized to Q8_0 at load ([`GgufOptions::requantize_q8`]).
//! - Tokenizer: byte-level BPE built from the file's own metadata ([`tokenizer`]).
//! - Prompt: the file's chat template, ChatML or Llama 3 ([`template`]).
//!
//! The model keeps a KV cache, so one request runs at a time: requests take a mutex inside
//! `spawn_blocking` and queue.

mod model;
pub mod template;
pub mod tokenizer;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;

use model::{KvCache, LlamaWeights, keeps_type};

use crate::{
    BackendInfo, ChatRequest, FinishReason, GenerateError, Generation, Repetition, TextGenerator,
};

use template::ChatTemplate;
use tokenizer::{Tokenizer, Utf8Stream};

/// Prompt tokens fed to the model per forward pass while prefilling (bounds the attention
/// matrices of a long prompt).
const PREFILL_CHUNK: usize = 256;

/// How to load a GGUF model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufOptions {
    /// Threads for inference: a dedicated rayon pool that generation is `install`ed into (it runs
    /// the attention and candle's rayon-parallel ops), so the model never uses the global rayon
    /// pool nor more threads than this. candle's quantized matmul kernels, though, use a
    /// process-wide spinning pool of their own, sized once from `CANDLE_NUM_THREADS` (else
    /// `RAYON_NUM_THREADS`, else the physical core count) — an environment variable the process
    /// must be started with (this crate forbids `unsafe`, so it cannot set one);
    /// [`GgufGenerator::load`] warns when the two differ.
    pub threads: usize,
    /// Caps the model's context window (tokens of prompt and reply together).
    pub context: Option<usize>,
    /// Re-quantizes weights of types without a fast CPU kernel (anything but Q8_0, Q4_K and float
    /// types) to Q8_0 at load. Costs load time and a little memory; buys several times the speed.
    pub requantize_q8: bool,
}

impl Default for GgufOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            context: None,
            requantize_q8: true,
        }
    }
}

/// Why a GGUF model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the GGUF model {}: {message}", path.display())]
pub struct LoadError {
    path: PathBuf,
    message: String,
}

impl LoadError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// What [`GgufGenerator::generate_tokens`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGeneration {
    /// The generated tokens, without the end-of-turn token.
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    /// Time to the first generated token.
    pub prefill: Duration,
    pub elapsed: Duration,
}

/// How [`GgufGenerator::generate_tokens`] picks tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    pub seed: u64,
    pub repetition: Repetition,
    /// False: EOS and end-of-turn tokens do not stop generation (for benchmarks).
    pub stop_at_end_of_turn: bool,
}

impl Sampling {
    /// The model's own choices for `max_tokens` tokens, past any end of turn: what benchmarks and
    /// parity tests compare.
    pub fn raw(max_tokens: usize, temperature: f32, seed: u64) -> Self {
        Self {
            max_tokens,
            temperature,
            seed,
            repetition: Repetition::OFF,
            stop_at_end_of_turn: false,
        }
    }
}

/// A Llama-family chat model in a GGUF file, run in process.
#[derive(Clone)]
pub struct GgufGenerator {
    inner: Arc<Inner>,
}

/// The longest context supported (candle's `quantized_llama` limit, kept for parity).
const MAX_POSITIONS: usize = 4096;

struct Inner {
    weights: LlamaWeights,
    /// The one conversation the model can hold at a time (cleared by each request, its memory
    /// kept for the next).
    cache: Mutex<KvCache>,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop: Vec<u32>,
    context: usize,
    pool: rayon::ThreadPool,
    info: BackendInfo,
}

impl std::fmt::Debug for GgufGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufGenerator")
            .field("model", &self.inner.info.model)
            .field("template", &self.inner.template.name())
            .field("context", &self.inner.context)
            .finish_non_exhaustive()
    }
}

impl GgufGenerator {
    /// Loads a model (blocking: call it from `spawn_blocking` in async code).
    pub fn load(path: impl AsRef<Path>, options: GgufOptions) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let span = tracing::info_span!("gguf_load", path = %path.display());
        let _enter = span.enter();
        let started = Instant::now();
        let fail = |message: String| LoadError::new(path, message);

        let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut reader = BufReader::new(file);
        let content =
            Content::read(&mut reader).map_err(|e| fail(format!("not a GGUF file: {e}")))?;

        let architecture = md_string(&content.metadata, "general.architecture");
        if architecture.as_deref() != Some("llama") {
            return Err(fail(format!(
                "general.architecture is {architecture:?}; only \"llama\" is supported"
            )));
        }
        let tokenizer =
            Tokenizer::from_gguf_metadata(&content.metadata).map_err(|e| fail(e.to_string()))?;
        let chat_template = md_string(&content.metadata, "tokenizer.chat_template");
        let template = ChatTemplate::detect(chat_template.as_deref(), &tokenizer)
            .ok_or_else(|| fail("no ChatML or Llama 3 chat template or special tokens".into()))?;
        for marker in template.markers() {
            let id = tokenizer.token_id(marker);
            if id.is_none_or(|id| !tokenizer.is_special(id)) {
                return Err(fail(format!(
                    "the {} chat template needs the special token {marker}",
                    template.name()
                )));
            }
        }
        let mut stop: Vec<u32> = template
            .end_of_turn()
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .collect();
        stop.extend(tokenizer.eos());
        if let Some(eot) = content
            .metadata
            .get("tokenizer.ggml.eot_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            stop.push(eot);
        }
        stop.sort_unstable();
        stop.dedup();

        let trained = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_POSITIONS, |n| n as usize);
        let context = trained
            .min(MAX_POSITIONS)
            .min(options.context.unwrap_or(usize::MAX))
            .max(1);

        let converted = std::cell::Cell::new(0usize);
        let convert = |name: &str, tensor: QTensor| -> candle_core::Result<QTensor> {
            if options.requantize_q8
                && !keeps_type(tensor.dtype())
                && can_requantize(tensor.shape().dims())
            {
                converted.set(converted.get() + 1);
                let weights = tensor.dequantize(&Device::Cpu)?;
                QTensor::quantize(&weights, GgmlDType::Q8_0)
                    .map_err(|e| e.context(format!("re-quantizing {name} to Q8_0")))
            } else {
                Ok(tensor)
            }
        };
        let weights = LlamaWeights::load(&content, &mut reader, context, &convert)
            .map_err(|e| fail(format!("reading the weights: {e}")))?;
        let cache = weights.new_cache();

        let threads = options.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("quire-gguf-{i}"))
            .build()
            .map_err(|e| fail(format!("starting {threads} inference threads: {e}")))?;
        let kernel_threads = candle_core::utils::barrier_pool().n_workers() + 1;
        if kernel_threads != threads {
            tracing::warn!(
                threads,
                kernel_threads,
                "candle's quantized kernels use {kernel_threads} threads; set CANDLE_NUM_THREADS={threads} in the environment to match"
            );
        }

        let model_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::info!(
            model = %model_name,
            template = template.name(),
            pre = ?tokenizer.pre_tokenizer(),
            vocab = tokenizer.vocab_size(),
            context,
            threads,
            requantized_to_q8_0 = converted.get(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded GGUF model"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                weights,
                cache: Mutex::new(cache),
                tokenizer,
                template,
                stop,
                context,
                pool,
                info: BackendInfo {
                    backend: "gguf".to_owned(),
                    model: model_name,
                },
            }),
        })
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// The chat template in use.
    pub fn template(&self) -> &ChatTemplate {
        &self.inner.template
    }

    /// The prompt tokens for a request's messages.
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Vec<u32> {
        self.inner
            .template
            .encode(&request.messages, &self.inner.tokenizer)
    }

    /// [`TextGenerator::generate`], blocking.
    pub fn generate_blocking(&self, request: &ChatRequest) -> Result<Generation, GenerateError> {
        let span = tracing::info_span!(
            "gguf_generate",
            model = %self.inner.info.model,
            max_tokens = request.max_tokens,
            temperature = request.temperature,
        );
        let _enter = span.enter();
        let prompt = self.prompt_tokens(request);
        let out = self.generate_tokens(
            &prompt,
            &Sampling {
                max_tokens: request.max_tokens,
                temperature: request.temperature,
                seed: request.seed,
                repetition: request.repetition,
                stop_at_end_of_turn: true,
            },
        )?;
        tracing::debug!(
            prompt_tokens = prompt.len(),
            completion_tokens = out.tokens.len(),
            finish_reason = ?out.finish_reason,
            prefill_ms = out.prefill.as_millis() as u64,
            elapsed_ms = out.elapsed.as_millis() as u64,
            "generated"
        );
        Ok(Generation {
            text: out.text,
            prompt_tokens: prompt.len(),
            completion_tokens: out.tokens.len(),
            finish_reason: out.finish_reason,
            prefill: out.prefill,
            elapsed: out.elapsed,
        })
    }

    /// Continues `prompt` as `sampling` says (blocking).
    pub fn generate_tokens(
        &self,
        prompt: &[u32],
        sampling: &Sampling,
    ) -> Result<TokenGeneration, GenerateError> {
        let Sampling {
            max_tokens,
            temperature,
            seed,
            repetition,
            stop_at_end_of_turn,
        } = *sampling;
        let started = Instant::now();
        let inner = &self.inner;
        if prompt.is_empty() {
            return Err(GenerateError::Model("empty prompt".into()));
        }
        if prompt.len() >= inner.context {
            return Err(GenerateError::PromptTooLong {
                tokens: prompt.len(),
                limit: inner.context,
            });
        }
        let budget = max_tokens.min(inner.context - prompt.len());
        let mut guard = inner
            .cache
            .lock()
            .map_err(|_| GenerateError::Model("the model panicked in an earlier request".into()))?;
        let cache: &mut KvCache = &mut guard;
        // Queued requests wait for the lock; their clocks start once they have the model.
        let started_run = Instant::now();
        let queued = started_run - started;
        cache.clear();
        let temperature = (temperature > 0.0).then_some(f64::from(temperature));
        let mut sampler = LogitsProcessor::new(seed, temperature, None);
        let model_error = |what: &str, e: candle_core::Error| {
            GenerateError::Model(format!("{what} ({} prompt tokens): {e}", prompt.len()))
        };

        inner.pool.install(|| {
            let mut tokens = Vec::with_capacity(budget);
            let mut text = String::new();
            let mut utf8 = Utf8Stream::new();
            let mut finish_reason = FinishReason::Length;
            let mut prefill = Duration::ZERO;
            if budget == 0 {
                return Ok(TokenGeneration {
                    tokens,
                    text,
                    finish_reason,
                    prefill,
                    elapsed: started_run.elapsed() + queued,
                });
            }

            let mut logits = Vec::new();
            for chunk in prompt.chunks(PREFILL_CHUNK) {
                logits = inner
                    .weights
                    .forward(chunk, cache)
                    .map_err(|e| model_error("prefill", e))?;
            }
            loop {
                repetition.apply(&mut logits, &tokens);
                let next = Tensor::new(logits.as_slice(), &Device::Cpu)
                    .and_then(|l| sampler.sample(&l))
                    .map_err(|e| model_error("sampling", e))?;
                if tokens.is_empty() {
                    prefill = started_run.elapsed();
                }
                if stop_at_end_of_turn && inner.stop.contains(&next) {
                    finish_reason = FinishReason::Stop;
                    break;
                }
                tokens.push(next);
                if !inner.tokenizer.is_special(next) {
                    text.push_str(&utf8.push(inner.tokenizer.token_bytes(next)));
                }
                if tokens.len() >= budget {
                    break;
                }
                logits = inner
                    .weights
                    .forward(&[next], cache)
                    .map_err(|e| model_error("decode", e))?;
            }
            text.push_str(&utf8.finish());
            Ok(TokenGeneration {
                tokens,
                text,
                finish_reason,
                prefill: prefill + queued,
                elapsed: started_run.elapsed() + queued,
            })
        })
    }
}

#[async_trait]
impl TextGenerator for GgufGenerator {
    fn info(&self) -> BackendInfo {
        self.inner.info.clone()
    }

    fn context_window(&self) -> usize {
        self.inner.context
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner.tokenizer.count(text)
    }

    async fn generate(&self, request: ChatRequest) -> Result<Generation, GenerateError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.generate_blocking(&request))
            .await
            .map_err(|e| GenerateError::Model(format!("the generation task failed: {e}")))?
    }
}

fn md_string(metadata: &HashMap<String, Value>, key: &str) -> Option<String> {
    metadata.get(key).and_then(|v| v.to_string().ok()).cloned()
}

/// Q8_0 packs rows in blocks of 32 values.
fn can_requantize(dims: &[usize]) -> bool {
    dims.len() == 2 && dims[1].is_multiple_of(32)
}

#[cfg(test)]
mod tests;
