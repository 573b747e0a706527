#!/usr/bin/env python3
"""Write a tiny random-weight llama-architecture GGUF model for integration tests.

    python scripts/make_tiny_gguf.py OUT.gguf

The model is nonsense on purpose: it exists so that a real llama.cpp server (through
llama-cpp-python) can load it in well under a second and answer the OpenAI-compatible
endpoints (/v1/models, /v1/chat/completions incl. streaming, /v1/completions,
/v1/embeddings) without downloading any weights. What the tests can rely on:

  * Deterministic: fixed RNG seed and no timestamps, so the file is byte-identical on every
    run (scripts/llama-server.sh regenerates it only when this script changes).
  * Printable output of predictable length: the output-projection rows of the control and
    byte tokens are zero, so their logit is always 0, while the ~95 printable tokens get
    large random logits (std ~8) whose maximum is far above 0. Greedy decoding therefore
    only ever picks a printable single-character token, never an end-of-generation token,
    so a request with max_tokens=N returns exactly N characters and
    finish_reason "length". (With temperature > 0, llama-cpp-python's default min_p=0.05
    also cuts the zero-logit tokens; a client that sets min_p=0 and top_k=0 with a high
    temperature could in principle still sample one.)
  * Chat: a ChatML `tokenizer.chat_template`, with <|im_start|>/<|im_end|> as control
    tokens and <|im_end|> as the EOS token (as ChatML models such as Qwen do).
  * Embeddings: pooling type MEAN, so /v1/embeddings returns one vector (of length
    EMBED = 64) per input instead of one vector per token.

Tokenizer choice: the "llama" (SentencePiece-style, SPM) tokenizer model. It needs no merge
list (the "gpt2"/BPE model requires `tokenizer.ggml.merges` and a pre-tokenizer name, and
encodes bytes with GPT-2's byte-to-unicode table); SPM only needs pieces with scores and
types. llama.cpp's SPM tokenizer splits text into UTF-8 characters, tries to merge
adjacent pieces that exist in the vocab (none do here: every piece is one character),
and falls back to the byte tokens "<0xXX>" for any character not in the vocab. Spaces are
escaped to U+2581 ("▁") before lookup, so "▁" is the vocab's space token (and is turned
back into " " when decoding). Non-ASCII text therefore tokenizes into byte tokens, which
is fine for a test model.

Vocabulary (356 tokens):
    0        <unk>           UNKNOWN
    1        <s>             CONTROL (BOS; not added automatically)
    2        </s>            CONTROL
    3        <|im_start|>    CONTROL
    4        <|im_end|>      CONTROL (EOS)
    5..260   <0x00>..<0xFF>  BYTE
    261      ▁               NORMAL (space)
    262..355 ! .. ~          NORMAL (printable ASCII 0x21..0x7E)
"""

from __future__ import annotations

import sys

import numpy as np
import gguf

SEED = 1234
ARCH = "llama"
NAME = "tiny-random-llama"

N_LAYER = 2
EMBED = 64
N_HEAD = 4
N_HEAD_KV = 4
HEAD_DIM = EMBED // N_HEAD
FFN = 128
CONTEXT = 256
RMS_EPS = 1e-5
ROPE_BASE = 10000.0

# Jinja ChatML template, the same shape HF chat models ship. llama-cpp-python renders it
# (with jinja2) and uses the EOS token text (<|im_end|>) as the stop string for chat.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SPACE = "\u2581"  # SentencePiece's escaped space


def build_vocab() -> tuple[list[str], list[float], list[int], int]:
    """Return (tokens, scores, types, first_normal_id)."""
    T = gguf.TokenType
    tokens: list[str] = []
    types: list[int] = []

    def add(text: str, ttype: int) -> None:
        tokens.append(text)
        types.append(int(ttype))

    add("<unk>", T.UNKNOWN)
    for text in ("<s>", "</s>", "<|im_start|>", "<|im_end|>"):
        add(text, T.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", T.BYTE)
    first_normal = len(tokens)
    add(SPACE, T.NORMAL)
    for c in range(0x21, 0x7F):
        add(chr(c), T.NORMAL)
    # Scores only steer SPM merges; with single-character pieces nothing ever merges, so any
    # values work. Zero for all keeps it obvious.
    scores = [0.0] * len(tokens)
    return tokens, scores, types, first_normal


def build_tensors(n_vocab: int, first_normal: int) -> dict[str, np.ndarray]:
    """Random weights in llama.cpp's layout.

    numpy shapes are (rows, cols) = (out_features, in_features); gguf stores them with the
    dimensions reversed, which is the ggml `ne` order llama.cpp checks against.
    """
    rng = np.random.default_rng(SEED)

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    t: dict[str, np.ndarray] = {}
    t["token_embd.weight"] = normal((n_vocab, EMBED), 1.0)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        # 1/sqrt(fan_in) keeps activations at unit scale through the random layers.
        t[p + "attn_norm.weight"] = ones(EMBED)
        t[p + "attn_q.weight"] = normal((N_HEAD * HEAD_DIM, EMBED), EMBED**-0.5)
        t[p + "attn_k.weight"] = normal((N_HEAD_KV * HEAD_DIM, EMBED), EMBED**-0.5)
        t[p + "attn_v.weight"] = normal((N_HEAD_KV * HEAD_DIM, EMBED), EMBED**-0.5)
        t[p + "attn_output.weight"] = normal((EMBED, N_HEAD * HEAD_DIM), EMBED**-0.5)
        t[p + "ffn_norm.weight"] = ones(EMBED)
        t[p + "ffn_gate.weight"] = normal((FFN, EMBED), EMBED**-0.5)
        t[p + "ffn_up.weight"] = normal((FFN, EMBED), EMBED**-0.5)
        t[p + "ffn_down.weight"] = normal((EMBED, FFN), FFN**-0.5)
    t["output_norm.weight"] = ones(EMBED)
    # A separate output matrix (not tied to token_embd) so control/byte rows can be zeroed:
    # see the module docstring. After the final RMS norm the hidden state has norm ~8, so
    # std 1.0 rows give printable tokens logits with std ~8.
    out = normal((n_vocab, EMBED), 1.0)
    out[:first_normal] = 0.0
    t["output.weight"] = out
    return t


def write(path: str) -> None:
    tokens, scores, types, first_normal = build_vocab()
    n_vocab = len(tokens)
    eos_id = tokens.index("<|im_end|>")

    w = gguf.GGUFWriter(path, ARCH)
    w.add_name(NAME)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_vocab_size(n_vocab)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(EMBED)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(FFN)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_layer_norm_rms_eps(RMS_EPS)
    # Without this llama.cpp uses no pooling for a llama model and /v1/embeddings returns
    # one vector per token.
    w.add_pooling_type(gguf.PoolingType.MEAN)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(eos_id)
    # ChatML prompts carry their own markers: no automatic BOS/EOS, and no SentencePiece
    # leading space (so "Hi" is two tokens, not "▁Hi" three).
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_chat_template(CHAT_TEMPLATE)

    for name, arr in build_tensors(n_vocab, first_normal).items():
        w.add_tensor(name, arr)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT.gguf", file=sys.stderr)
        return 2
    write(argv[1])
    print(f"wrote {argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
