"""Small Llama-architecture Hugging Face folders for the language-model tests: random-but-fixed weights
(structure: export, cache, generation, packing) built in a second, cached per test session; the accuracy
claims use ../shared/acceptance/lib/tiny_llama.py's trained model (tests marked slow)."""

from __future__ import annotations

import os

TEXT = ("Return a new list containing the items of the iterable in sorted order. The key function is called "
        "once for each element. Open the file and return a stream; raise OSError on failure. ") * 8


def tokenizer(folder: str) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(folder)


def random_llama(folder: str, tied: bool = True, kv_heads: int = 2, arch: str = "llama", hidden: int = 64,
                 layers: int = 2, vocab: int = 320) -> str:
    """A model (default: 2 layers, hidden 64, 4 query heads) with seeded random weights, saved as a Hugging
    Face folder; vocab beyond the tokenizer's 320 tokens is never produced by it, only by the model."""
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return folder
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    os.makedirs(folder, exist_ok=True)
    tokenizer(folder)
    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4,
                  num_key_value_heads=kv_heads, max_position_embeddings=256, tie_word_embeddings=tied,
                  bos_token_id=0, eos_token_id=1)
    model = Qwen2ForCausalLM(Qwen2Config(**common)) if arch == "qwen2" else LlamaForCausalLM(LlamaConfig(**common))
    with torch.no_grad():  # larger than the default init, so that greedy decoding is not one repeated token
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    model.eval().save_pretrained(folder, safe_serialization=True)
    GenerationConfig(bos_token_id=0, eos_token_id=1, do_sample=False).save_pretrained(folder)
    return folder
