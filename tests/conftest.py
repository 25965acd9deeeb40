"""Shared fixtures: offline environment, a tiny tokenizer and model built on the spot, a checkpoint series."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One converted copy of the bundled SmolLM2 for all test sessions and xdist workers (a filelock guards it).
SHARED_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "reasonlens-cache"

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Let's break down the problem. First, we add 3 and 4 to get 7.",
    "But wait, let me check again: 12 * 3 = 36, so the answer is \\boxed{36}.",
    "Alternatively, we can use the fact that the sum of two even numbers is even.",
    "Hmm, that's not right. Let's try a different approach to solve for x.",
    "The total cost is 5 + 8 = 13 dollars, therefore the answer is \\boxed{13}.",
    "Question: Tom has 4 apples and buys 9 more. How many apples does he have?",
] * 20


@pytest.fixture(autouse=True, scope="session")
def _offline_env():
    """No hub; the real bundled models load from site-packages, converted once into SHARED_CACHE. Under
    pytest-xdist each worker gets one torch thread: two workers with two threads each on two cores run
    several times slower than one each."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("REASONLENS_CACHE", str(SHARED_CACHE))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ.setdefault("OMP_NUM_THREADS", "1")  # also for the commands the tests start
        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A byte-level BPE (GPT-2 style, 400 tokens) with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    path = tmp_path_factory.mktemp("tiny-tokenizer")
    fast.save_pretrained(path)
    return path


def _tiny_llama(tokenizer, seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer_dir, tmp_path_factory):
    """A random 2-layer Llama (hidden 64) saved as an HF folder with the tiny tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = _tiny_llama(tokenizer)
    path = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_series(tiny_model_dir, tmp_path_factory):
    """A TRL-style series `checkpoint-1..3`, each one SGD step further on the corpus."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batch = tokenizer(CORPUS[:6], return_tensors="pt", padding=True)
    root = tmp_path_factory.mktemp("tiny-series")
    for step in (1, 2, 3):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.save_pretrained(root / f"checkpoint-{step}")
        tokenizer.save_pretrained(root / f"checkpoint-{step}")
    return root
