"""llama.cpp's prefill and decode speed on a GGUF, measured the way `gguf_bench` measures ours.

    python ops/llama-cpp-bench.py MODEL.gguf PROMPT_TOKENS DECODE_TOKENS THREADS TEXT_FILE

The prompt is TEXT_FILE's tokens, repeated or cut to PROMPT_TOKENS; prefill is one `eval` of them
all (llama.cpp batches them, n_batch 512); decoding samples greedily for DECODE_TOKENS. Median of
three runs after a warm-up. Run by ops/gguf-vs-llama-cpp.sh, which installs the wheel.
"""
import sys
import time

from llama_cpp import Llama

path, n_prompt, n_decode, threads, text_file = sys.argv[1:6]
n_prompt, n_decode, threads = int(n_prompt), int(n_decode), int(threads)
llm = Llama(model_path=path, n_ctx=4096, n_threads=threads, n_threads_batch=threads,
            n_batch=512, verbose=False)
tokens = llm.tokenize(open(text_file, encoding="utf-8").read().encode(), add_bos=False)
while len(tokens) < n_prompt:
    tokens += tokens
tokens = tokens[:n_prompt]
prefill, decode = [], []
for run in range(4):
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    prefilled = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(n_decode):
        llm.eval([llm.sample(temp=0.0)])
    decoded = time.perf_counter() - started
    if run:
        prefill.append(n_prompt / prefilled)
        decode.append(n_decode / decoded)
prefill.sort()
decode.sort()
print(f"llama.cpp prefill {prefill[1]:.1f} tok/s (best {prefill[-1]:.1f}; {n_prompt} tokens)   "
      f"decode {decode[1]:.1f} tok/s (best {decode[-1]:.1f}; {n_decode} tokens)   median of 3")
