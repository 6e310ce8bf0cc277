//! The Llama forward pass: candle's quantized matmul kernels for a decoded token's weights, dense
//! f32 GEMMs for a prompt's, plain Rust for the rest.
//!
//! Same arithmetic as `candle_transformers::models::quantized_llama::ModelWeights` (a test checks
//! the logits of the quantized path against it, and the dense path against the quantized one),
//! with what decoding needs to stay fast on a long prompt:
//!
//! - a KV cache appended in place (candle's concatenates the whole cache, and copies it again per
//!   query head, at every token: at a 1,000-token context that halves decode speed);
//! - a decoded token's attention computed directly over the cache, grouped-query heads reading
//!   their shared KV head, no mask tensor, in parallel over heads on the generator's rayon pool;
//! - a prompt's projections and attention as matrix products over all its tokens at once
//!   ([`DENSE_MIN_ROWS`]). (Decoding uses no f32 `Tensor::matmul`: with `RAYON_NUM_THREADS`
//!   unset, candle re-reads `/proc/cpuinfo` at every one to choose its thread count, which a
//!   prompt's few large products absorb and a token's many small steps would not.)

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use rayon::prelude::*;

/// A Llama-family model's weights and hyper-parameters (shared, read-only).
#[derive(Debug)]
pub(crate) struct LlamaWeights {
    embeddings: Arc<QTensor>,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: QMatMul,
    dim: usize,
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    eps: f32,
    /// cos and sin of each position's rotary angles, `[position][head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    max_positions: usize,
    vocab: usize,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    o: QMatMul,
    ffn_norm: Vec<f32>,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

/// One conversation's KV cache: `[position][kv head][head_dim]` per layer. Cleared, not freed,
/// between requests.
#[derive(Debug, Default)]
pub(crate) struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    pub(crate) fn clear(&mut self) {
        for k in &mut self.keys {
            k.clear();
        }
        for v in &mut self.values {
            v.clear();
        }
        self.len = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// How to turn each stored tensor into the one to compute with.
pub(crate) type Convert<'a> = &'a dyn Fn(&str, QTensor) -> candle_core::Result<QTensor>;

fn md_u32(content: &Content, key: &str) -> candle_core::Result<usize> {
    match content.metadata.get(key) {
        Some(v) => Ok(v.to_u32()? as usize),
        None => candle_core::bail!("no {key} in the metadata"),
    }
}

fn md_f32(content: &Content, key: &str) -> Option<f32> {
    content.metadata.get(key).and_then(|v| v.to_f32().ok())
}

fn floats(t: &QTensor) -> candle_core::Result<Vec<f32>> {
    t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()
}

impl LlamaWeights {
    /// Reads the weights of a `llama` GGUF; `convert` may re-quantize each tensor.
    pub(crate) fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        max_positions: usize,
        convert: Convert<'_>,
    ) -> candle_core::Result<Self> {
        let experts = content
            .metadata
            .get("llama.expert_count")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0);
        if experts > 1 {
            candle_core::bail!("mixture-of-experts models are not supported");
        }
        let heads = md_u32(content, "llama.attention.head_count")?;
        let kv_heads = md_u32(content, "llama.attention.head_count_kv")?;
        let blocks = md_u32(content, "llama.block_count")?;
        let dim = md_u32(content, "llama.embedding_length")?;
        let rope_dim = md_u32(content, "llama.rope.dimension_count")?;
        let eps = md_f32(content, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5);
        let rope_base = md_f32(content, "llama.rope.freq_base").unwrap_or(10_000.0);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            candle_core::bail!("{heads} attention heads cannot share {kv_heads} KV heads");
        }
        let head_dim = dim / heads;
        if head_dim * heads != dim || rope_dim != head_dim || !head_dim.is_multiple_of(2) {
            candle_core::bail!(
                "unsupported shape: {dim} dims, {heads} heads, rotary dimension {rope_dim}"
            );
        }

        let mut tensor = |name: &str| -> candle_core::Result<QTensor> {
            let t = content.tensor(reader, name, &Device::Cpu)?;
            convert(name, t)
        };
        let embeddings = Arc::new(tensor("token_embd.weight")?);
        let (vocab, embedding_dim) = embeddings.shape().dims2()?;
        if embedding_dim != dim {
            candle_core::bail!("token_embd.weight has {embedding_dim} columns, not {dim}");
        }
        let output_norm = floats(&tensor("output_norm.weight")?)?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            QMatMul::from_qtensor(tensor("output.weight")?)?
        } else {
            QMatMul::from_arc(embeddings.clone())?
        };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let mut weight = |name: &str| tensor(&format!("blk.{i}.{name}.weight"));
            layers.push(Layer {
                attn_norm: floats(&weight("attn_norm")?)?,
                q: QMatMul::from_qtensor(weight("attn_q")?)?,
                k: QMatMul::from_qtensor(weight("attn_k")?)?,
                v: QMatMul::from_qtensor(weight("attn_v")?)?,
                o: QMatMul::from_qtensor(weight("attn_output")?)?,
                ffn_norm: floats(&weight("ffn_norm")?)?,
                gate: QMatMul::from_qtensor(weight("ffn_gate")?)?,
                up: QMatMul::from_qtensor(weight("ffn_up")?)?,
                down: QMatMul::from_qtensor(weight("ffn_down")?)?,
            });
        }

        // Rotary angles as candle computes them (f32 throughout, for identical results).
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        let theta: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1f32 / rope_base.powf(i as f32 / head_dim as f32))
            .collect();
        for p in 0..max_positions {
            for t in &theta {
                let angle = p as f32 * t;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }

        Ok(Self {
            embeddings,
            layers,
            output_norm,
            output,
            dim,
            heads,
            kv_heads,
            head_dim,
            eps,
            cos,
            sin,
            max_positions,
            vocab,
        })
    }

    pub(crate) fn new_cache(&self) -> KvCache {
        KvCache {
            keys: vec![Vec::new(); self.layers.len()],
            values: vec![Vec::new(); self.layers.len()],
            len: 0,
        }
    }

    /// Runs `tokens` (at the cache's next positions) through the model; returns the logits of
    /// the last one.
    pub(crate) fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
    ) -> candle_core::Result<Vec<f32>> {
        self.forward_with(tokens, cache, DENSE_MIN_ROWS)
    }

    /// [`Self::forward`], with passes of `dense_min_rows` or more tokens run dense.
    pub(crate) fn forward_with(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        dense_min_rows: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let seq = tokens.len();
        let dense = seq >= dense_min_rows;
        let start = cache.len;
        if seq == 0 {
            candle_core::bail!("no tokens to run");
        }
        if start + seq > self.max_positions {
            candle_core::bail!(
                "position {} is past the model's {} positions",
                start + seq,
                self.max_positions
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            candle_core::bail!("token {bad} is past the vocabulary of {}", self.vocab);
        }
        let (dim, hd) = (self.dim, self.head_dim);
        let kv_dim = self.kv_heads * hd;
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self
            .embeddings
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut normed = vec![0f32; seq * dim];
        let mut attn = vec![0f32; seq * dim];

        for (layer, (keys, values)) in self
            .layers
            .iter()
            .zip(cache.keys.iter_mut().zip(cache.values.iter_mut()))
        {
            rms_norm(&x, &layer.attn_norm, self.eps, dim, &mut normed);
            let input = Tensor::from_slice(&normed, (seq, dim), &Device::Cpu)?;
            let mut q = to_vec(project(&layer.q, &input, dense)?)?;
            let mut k = to_vec(project(&layer.k, &input, dense)?)?;
            let v = to_vec(project(&layer.v, &input, dense)?)?;
            for i in 0..seq {
                let p = start + i;
                self.rotate(&mut q[i * dim..(i + 1) * dim], p);
                self.rotate(&mut k[i * kv_dim..(i + 1) * kv_dim], p);
            }
            keys.truncate(start * kv_dim);
            values.truncate(start * kv_dim);
            keys.extend_from_slice(&k);
            values.extend_from_slice(&v);
            if dense {
                self.dense_attention(&q, keys, values, start, seq, &mut attn)?;
            } else {
                self.attention(&q, keys, values, start, seq, &mut attn);
            }

            let attn_in = Tensor::from_slice(&attn, (seq, dim), &Device::Cpu)?;
            let out = project(&layer.o, &attn_in, dense)?;
            add_into(&mut x, &to_vec(out)?);

            rms_norm(&x, &layer.ffn_norm, self.eps, dim, &mut normed);
            let input = Tensor::from_slice(&normed, (seq, dim), &Device::Cpu)?;
            let mut gate = to_vec(project(&layer.gate, &input, dense)?)?;
            let up = to_vec(project(&layer.up, &input, dense)?)?;
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            let hidden = Tensor::from_vec(gate, (seq, up.len() / seq), &Device::Cpu)?;
            add_into(&mut x, &to_vec(project(&layer.down, &hidden, dense)?)?);
        }
        cache.len = start + seq;

        let last = &x[(seq - 1) * dim..];
        let mut normed_last = vec![0f32; dim];
        rms_norm(last, &self.output_norm, self.eps, dim, &mut normed_last);
        let input = Tensor::from_vec(normed_last, (1, dim), &Device::Cpu)?;
        to_vec(self.output.forward(&input)?)
    }

    /// Rotates each head of one position's queries or keys (interleaved pairs, as Llama GGUFs
    /// store them).
    fn rotate(&self, row: &mut [f32], position: usize) {
        let half = self.head_dim / 2;
        let cos = &self.cos[position * half..][..half];
        let sin = &self.sin[position * half..][..half];
        for head in row.chunks_exact_mut(self.head_dim) {
            for (pair, (c, s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c - b * s;
                pair[1] = a * s + b * c;
            }
        }
    }

    /// [`Self::attention`] as matrix products, for a prompt: per KV head, the queries of the
    /// heads that share it against all its keys at once (one GEMM for the scores, one for the
    /// weighted values), with the causal mask and softmax in between. Per query and head, as
    /// `attention` does it, a 2,048-token prompt spends as long in attention as in all the
    /// projections together.
    pub(crate) fn dense_attention(
        &self,
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        start: usize,
        seq: usize,
        out: &mut [f32],
    ) -> candle_core::Result<()> {
        let hd = self.head_dim;
        let kv_dim = self.kv_heads * hd;
        let group = self.heads / self.kv_heads;
        let dim = self.heads * hd;
        let total = start + seq;
        let scale = 1.0 / (hd as f32).sqrt();
        for kvh in 0..self.kv_heads {
            let gather = |cache: &[f32]| -> Vec<f32> {
                let mut rows = Vec::with_capacity(total * hd);
                for j in 0..total {
                    rows.extend_from_slice(&cache[j * kv_dim + kvh * hd..][..hd]);
                }
                rows
            };
            let k = Tensor::from_vec(gather(keys), (total, hd), &Device::Cpu)?;
            let v = Tensor::from_vec(gather(values), (total, hd), &Device::Cpu)?;
            // The group's queries stacked: row g * seq + i is head (kvh * group + g), token i.
            let mut stacked = Vec::with_capacity(group * seq * hd);
            for g in 0..group {
                let h = kvh * group + g;
                for i in 0..seq {
                    stacked.extend_from_slice(&q[i * dim + h * hd..][..hd]);
                }
            }
            let queries = Tensor::from_vec(stacked, (group * seq, hd), &Device::Cpu)?;
            let mut scores = to_vec(queries.matmul(&k.t()?)?)?;
            scores
                .par_chunks_mut(total)
                .enumerate()
                .for_each(|(row, s)| {
                    let visible = start + row % seq + 1;
                    for x in &mut s[..visible] {
                        *x *= scale;
                    }
                    softmax(&mut s[..visible]);
                    s[visible..].fill(0.0);
                });
            let weights = Tensor::from_vec(scores, (group * seq, total), &Device::Cpu)?;
            let mixed = to_vec(weights.matmul(&v)?)?;
            for g in 0..group {
                let h = kvh * group + g;
                for i in 0..seq {
                    out[i * dim + h * hd..][..hd]
                        .copy_from_slice(&mixed[(g * seq + i) * hd..][..hd]);
                }
            }
        }
        Ok(())
    }

    /// Causal attention of `seq` queries (at positions `start..`) over the cache.
    pub(crate) fn attention(
        &self,
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        start: usize,
        seq: usize,
        out: &mut [f32],
    ) {
        let hd = self.head_dim;
        let kv_dim = self.kv_heads * hd;
        let group = self.heads / self.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let work = |(index, out): (usize, &mut [f32])| {
            let (i, h) = (index / self.heads, index % self.heads);
            let kvh = h / group;
            let query = &q[index * hd..(index + 1) * hd];
            let visible = start + i + 1;
            let mut scores: Vec<f32> = (0..visible)
                .map(|j| dot(query, &keys[j * kv_dim + kvh * hd..][..hd]) * scale)
                .collect();
            softmax(&mut scores);
            out.fill(0.0);
            for (j, &w) in scores.iter().enumerate() {
                let value = &values[j * kv_dim + kvh * hd..][..hd];
                for (o, v) in out.iter_mut().zip(value) {
                    *o += w * v;
                }
            }
        };
        let out = &mut out[..seq * self.heads * hd];
        // Parallel when there is enough to share (a long prompt); a decoding step is too small.
        if seq * (start + seq) >= 64 {
            out.par_chunks_mut(hd).enumerate().for_each(work);
        } else {
            out.chunks_mut(hd).enumerate().for_each(work);
        }
    }
}

/// Rows (prompt tokens in one forward pass) from which the projections run as dense f32 GEMMs
/// (and attention as matrix products, [`LlamaWeights::dense_attention`]).
///
/// candle's quantized kernel computes one dot product per row and column; that is the fastest way
/// to apply a weight matrix to one token (decoding reads the weights once, quantized, so memory
/// bandwidth bounds it), but a prompt applies each matrix to hundreds of tokens and is bound by
/// arithmetic, where a cache-blocked GEMM (candle's f32 `matmul`, the `gemm` crate) does 2–3 times
/// better. The weights are dequantized for the pass and dropped after it: no second copy of the
/// model is kept. `ops/gguf-vs-llama-cpp.sh` measures prefill beside llama.cpp's.
pub(crate) const DENSE_MIN_ROWS: usize = 32;

/// `input · Wᵀ`: quantized, or `dense` (see [`DENSE_MIN_ROWS`]).
fn project(weights: &QMatMul, input: &Tensor, dense: bool) -> candle_core::Result<Tensor> {
    match weights {
        QMatMul::QTensor(q) if dense => {
            let dense = q.dequantize(&Device::Cpu)?;
            input.matmul(&dense.t()?)
        }
        _ => weights.forward(input),
    }
}

/// Attention scores into weights that sum to 1 (shifted by the largest, so `exp` cannot overflow).
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

fn to_vec(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums: lets the compiler vectorize without reassociating.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        sum += x * y;
    }
    sum
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, dim: usize, out: &mut [f32]) {
    for (row, out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

/// Whether a tensor of this type is computed as it is stored.
pub(crate) fn keeps_type(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 | GgmlDType::Q8_0 | GgmlDType::Q4K
    )
}
