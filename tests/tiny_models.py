"""A tiny byte-level BPE, a random 2-layer Llama and a 3-checkpoint series built on the spot, in plain
functions: conftest's session fixtures and benchmarks/call_counts.py build the same objects from here."""

from __future__ import annotations

from pathlib import Path

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


def tiny_tokenizer(path: Path) -> Path:
    """A byte-level BPE (GPT-2 style, 400 tokens) with ChatML special tokens and template, saved to ``path``."""
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
    fast.save_pretrained(path)
    return path


def tiny_llama(tokenizer, seed: int = 0):
    """A random 2-layer Llama (hidden 64) sized to ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def tiny_model(path: Path, tokenizer_dir: Path) -> Path:
    """`tiny_llama` and the tiny tokenizer saved together as an HF folder at ``path``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tiny_llama(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_series(root: Path, model_dir: Path) -> Path:
    """A TRL-style series ``root/checkpoint-1..3``, each one SGD step further on the corpus."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batch = tokenizer(CORPUS[:6], return_tensors="pt", padding=True)
    for step in (1, 2, 3):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.save_pretrained(root / f"checkpoint-{step}")
        tokenizer.save_pretrained(root / f"checkpoint-{step}")
    return root
