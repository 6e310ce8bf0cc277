#!/usr/bin/env python3
"""Regenerates summarize/tests/fixtures/smollm2-golden-tokens.json: the token ids that llama.cpp's
own tokenizer gives a set of texts on SmolLM2-135M-Instruct (Q4_1 GGUF), the model the real-model
tests use. The test `smollm2_tokenizer_matches_llama_cpp` in summarize/tests/gguf_smollm2.rs
checks our byte-level BPE against them, which round trips alone cannot (a wrong merge order or
word split still decodes back to the same text).

llama.cpp's tokenizer comes from llama-cpp-python, which PyPI ships as source only: installing it
builds llama.cpp with CMake (about 10 minutes on 2 cores). Keep it out of the system Python:

    python3 -m venv /tmp/llama-venv
    /tmp/llama-venv/bin/pip install cmake llama-cpp-python==0.3.36
    /tmp/llama-venv/bin/python ops/golden-tokens.py [MODEL.gguf]

The model is MODEL.gguf, else $QUIRE_TEST_SMOLLM2, else what ops/fetch-smollm2.sh prints. Its
SHA-256 and the llama-cpp-python version are written into the fixture. The texts are tokenized
with add_bos=False and special=False: as plain text, the way our tokenizer's Specials::Deny does.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "summarize/tests/fixtures/smollm2-golden-tokens.json"

# Chosen to exercise each part of the tokenizer: the pre-tokenizer's regex branches (contractions,
# letters, digits one by one, punctuation runs, whitespace runs before a word or at the end), BPE
# merge order on long words and repeated characters, multi-byte UTF-8 (accents, CJK, emoji with
# joiners and modifiers, combining marks), bytes outside printable ASCII, and text that looks like
# special tokens but must stay plain.
TEXTS = [
    "",
    "a",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "I beheld the wretch—the miserable monster whom I had created.",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "   ",
    "word    word\tword",
    "long" + " " * 40 + "gap" + " " * 17 + "\n" * 12 + "end" + " " * 9,
    "x  \n  \n \t\n  y",
    "ideographic\u3000space, line\u2028separator, thin\u2009space",
    "don't I'll we're they've she'd it's I'm",
    "DON'T I'LL WE'RE Mr. O'Brien's dog's bone 'tis ''quoted''",
    "1234567 3.14 -42 1,000,000 2024-01-15 0x1F",
    "In 1818, page 305 of volume III.",
    "abc123def 9lives v2.0.1 x86_64 H2O 'S's '' '",
    "½ ⅓ ² ³ Ⅻ ٣٤٥ ๓",
    "$100.00 + 20% = €120,00 (approx. £104)",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "\r\n\r\nwindows\r\nlines",
    "tab\tseparated\tvalues\t\t",
    "mixed \t \n whitespace \n\t end",
    "fn main() {\n    println!(\"Hello, {}!\", name);\n}\n",
    "def f(x):\n\treturn x ** 2  # square\n",
    "if (a <= b && c != d) { return a->b; } // done",
    "Wait... what?!?! (yes) [no] {maybe} <tag/> --- *** ### ~~~",
    "“Curly quotes” and ‘single’ — em dash – en dash … ellipsis",
    "naïve café résumé façade Ångström Zürich São Paulo",
    "e\u0301 decomposed, ﬁ ligature, ß, İstanbul",
    "Ελληνικά κείμενο",
    "Привет, мир! Как дела?",
    "東京は日本の首都です。",
    "中文测试：你好，世界！",
    "한국어 텍스트",
    "مرحبا بالعالم",
    "हिन्दी पाठ",
    "emoji 🙂😀🎉 👍🏽 👨‍👩‍👧 🇫🇷",
    "mixed: English, русский, 日本語, and 123 numbers",
    "你好world123abc café東京 🙂ok",
    "\u00a0non-breaking\u00a0space and zero\u200bwidth",
    "\x07bell \x1b[0mescape \x7f delete",
    "e-mail: someone@example.com, url: https://example.com/path?q=1&r=2#frag",
    "ALLCAPS SHOUTING AND MiXeD CaSe",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ================",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><repo_name>",
]


def model_path() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    if os.environ.get("QUIRE_TEST_SMOLLM2"):
        return Path(os.environ["QUIRE_TEST_SMOLLM2"])
    out = subprocess.run(
        ["bash", str(REPO / "ops/fetch-smollm2.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    import llama_cpp

    path = model_path()
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    cases = []
    for text in TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)
        # llama.cpp must give the text back, or the ids are no reference for ours.
        back = llm.detokenize(ids, special=True).decode()
        if back != text:
            sys.exit(f"llama.cpp does not round-trip {text!r}: {back!r}")
        cases.append({"text": text, "ids": ids})

    # One case a line: small diffs when a text is added or the reference changes.
    lines = [
        "{",
        f'  "produced_by": {json.dumps("ops/golden-tokens.py")},',
        f'  "llama_cpp_python": {json.dumps(llama_cpp.__version__)},',
        f'  "model": {json.dumps(path.name)},',
        f'  "model_sha256": {json.dumps(sha256(path))},',
        '  "tokenize": "add_bos=False, special=False",',
        '  "cases": [',
        ",\n".join(
            "    " + json.dumps(case, ensure_ascii=False, separators=(", ", ": "))
            for case in cases
        ),
        "  ]",
        "}",
    ]
    FIXTURE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{FIXTURE.relative_to(REPO)}: {len(cases)} texts", file=sys.stderr)


if __name__ == "__main__":
    main()
