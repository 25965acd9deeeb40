"""Fused token scoring for CUDA: the lm_head in the model's dtype, then one Triton pass per chunk of logits.

Same contract as ``scoring.logprob_entropy_chunked``: per row, log p(target) and the full-vocabulary
entropy of softmax((softcap * tanh((h W^T + b) / softcap)) / temperature). The lm_head runs in torch
over row chunks (8192 rows by default; 2.4 GiB of bf16 logits at V=151936). Then one Triton program per
row streams that row's logits tile by tile (BLOCK columns at a time), adding the bias and soft-capping
each tile as it is loaded, so float32 logits never exist in memory. With l the result divided by the
temperature, it keeps in float32 registers a running max m, Z = sum exp(l - m), S = sum exp(l - m)(l - m)
(both rescaled whenever m grows: online softmax) and the target's logit: log p = (l_t - m) - log Z,
H = log Z - S / Z. Z is kept as R = Z - 1, the mass off the top token, so that log Z = log1p(R) keeps a
confident row's entropy (the torch reducer sums Z in float64 for the same reason).

Why our own kernel rather than Liger-Kernel's fused linear cross-entropy (from 0.8.2 it can also return
per-token entropy): Liger's op is built for training, fusing the lm_head into a chunked loss so that the
gradients come out of the same pass, with cross-entropy semantics (ignore_index, reductions) to map onto
ours; a forward-only scorer needs none of it. Ours is one ~50-line kernel computing exactly our contract
(bias, softcap, temperature, the full-vocabulary entropy), and it runs under Triton's interpreter
(``TRITON_INTERPRET=1``, CPU tensors), so CI checks it against a float64 reference without a GPU. Liger
could be neither installed usefully nor measured here (no CUDA). And what is left to win is small: a
prototype of this design, measured on an H200, took 1.01-1.02x the floor (decoder + lm_head over the
response rows) at the floor's memory, with 3e-7 relative error.

``TRITON_INTERPRET`` is read when the kernel is decorated, i.e. when this module is first imported: set
it before that. Without triton installed the module still imports (doctest collection, CPU-only
installs); ``score_tokens`` then falls back to, or asks for, the torch reducer.
"""

from __future__ import annotations

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: scoring.score_tokens checks TRITON_AVAILABLE before using this module
    triton = tl = None

TRITON_AVAILABLE = triton is not None
# Columns per tile: 4096 bf16 logits = 8 KiB per row per step, 16 per thread with 8 warps.
BLOCK = 4096
NUM_WARPS = 8

if TRITON_AVAILABLE:
    @triton.jit
    def _capped(x, softcap, HAS_SOFTCAP: tl.constexpr):
        """float32 logits (+ bias) -> softcap * tanh(x / softcap) when HAS_SOFTCAP, as the model does."""
        if HAS_SOFTCAP:
            # tanh(y) = 1 - 2 / (exp(2y) + 1): exact at both tails (exp -> inf gives 1, exp -> 0 gives -1).
            x = softcap * (1.0 - 2.0 / (tl.exp(2.0 * x / softcap) + 1.0))
        return x

    @triton.jit
    def _reduce_rows_kernel(logits_ptr, row_stride, targets_ptr, bias_ptr, logp_ptr, entropy_ptr, vocab,
                            inv_temperature, softcap, HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
                            BLOCK: tl.constexpr):
        """One program per row of a (C, V) logits chunk: streaming max, Z, S and target logit -> logp, H."""
        row = tl.program_id(0)
        base = logits_ptr + row.to(tl.int64) * row_stride  # int64: C * V passes 2**31 at 16k rows
        m = tl.full((), -1.0e30, tl.float32)  # finite: (m_old - m_new) * Z must be 0, not NaN, at the start
        r = tl.full((), -1.0, tl.float32)  # R = Z - 1, the mass off one top token; Z = 0 before any tile
        s = tl.zeros((), tl.float32)
        for start in range(0, vocab, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < vocab
            x = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)  # (BLOCK,)
            if HAS_BIAS:
                x += tl.load(bias_ptr + cols, mask=inside, other=0.0).to(tl.float32)
            x = tl.where(inside, _capped(x, softcap, HAS_SOFTCAP), -float("inf"))
            tile_max = tl.max(x, 0)
            m_new = tl.maximum(m, tile_max)
            # Temperature after the shift (max(l / T) = max(l) / T): scaling first would round logits of
            # size ~60 to 8e-6 and the tail masses exp(l - m) with them.
            shifted = (x - m_new) * inv_temperature  # <= 0; -inf past the vocabulary
            e = tl.exp(shifted)
            top = x == m_new  # lanes at the new max, e == 1 there
            below = tl.sum(tl.where(top, 0.0, e), 0)
            n_top = tl.sum(top.to(tl.float32), 0)
            step = (m - m_new) * inv_temperature  # <= 0
            scale = tl.exp(step)
            # S relative to the new max: sum e'(l - m') over earlier tiles = scale * (S + (m - m') Z).
            # Where e == 0 shifted may be -inf, and 0 * -inf is NaN: multiply by 0 instead.
            s = scale * (s + step * (1.0 + r)) + tl.sum(e * tl.where(e > 0.0, shifted, 0.0), 0)
            # R is never formed as Z - 1 (in float32 that loses R below ~6e-8, a confident row's entropy):
            # a new max turns the old Z into (1 + R) * scale and one of its own top lanes becomes "the 1".
            r = tl.where(tile_max > m, (1.0 + r) * scale + (n_top - 1.0), r + n_top) + below
            m = m_new
        target = tl.load(targets_ptr + row)
        x_t = tl.load(base + target).to(tl.float32)
        if HAS_BIAS:
            x_t += tl.load(bias_ptr + target).to(tl.float32)
        z = 1.0 + r
        # log1p(R) without tl.log1p: log(z) * R / (z - 1) is exact to a few ulps (Goldberg), R itself at z == 1.
        log_z = tl.where(z == 1.0, r, tl.log(z) * r / tl.where(z == 1.0, 1.0, z - 1.0))
        tl.store(logp_ptr + row, (_capped(x_t, softcap, HAS_SOFTCAP) - m) * inv_temperature - log_z)
        tl.store(entropy_ptr + row, log_z - s / z)


def reduce_logits(logits, targets, logp_out, entropy_out, *, bias=None, temperature: float = 1.0,
                  softcap: float | None = None, block: int = BLOCK) -> None:
    """Write log p(target) and entropy of each row of a logits chunk, in one Triton pass.

    Parameters
    ----------
    logits : (C, V) lm_head output in any float dtype, unit column stride (left untouched).
    targets : (C,) long; logp_out, entropy_out : (C,) float32, written in place.
    bias, temperature, softcap : as in ``logprob_entropy_fused``.
    block : columns per tile, a power of two (small values let tests cover many tiles).

    Examples
    --------
    >>> logits = torch.randn(8192, 151936, device="cuda", dtype=torch.bfloat16)  # doctest: +SKIP
    >>> logp, entropy = torch.empty(8192, device="cuda"), torch.empty(8192, device="cuda")  # doctest: +SKIP
    >>> reduce_logits(logits, torch.zeros(8192, dtype=torch.long, device="cuda"), logp, entropy)  # doctest: +SKIP
    """
    rows, vocab = logits.shape
    _reduce_rows_kernel[(rows,)](
        logits, logits.stride(0), targets, logits if bias is None else bias, logp_out, entropy_out, vocab,
        1.0 / temperature, 1.0 if softcap is None else float(softcap), HAS_BIAS=bias is not None,
        HAS_SOFTCAP=softcap is not None, BLOCK=block, num_warps=NUM_WARPS)


def logprob_entropy_fused(hidden, weight, targets, *, bias=None, temperature: float = 1.0,
                          chunk_rows: int = 8192, softcap: float | None = None):
    """``logprob_entropy_chunked`` with the reduction fused into one Triton pass per chunk.

    Same parameters and returns as `reasonlens.models.scoring.logprob_entropy_chunked`, with ``hidden``
    on CUDA (or on CPU under ``TRITON_INTERPRET=1``). Extra memory: one chunk's logits in the model's dtype,
    ``chunk_rows * V * itemsize`` bytes (the floor's own matmul output), nothing in float32.

    Examples
    --------
    >>> from reasonlens.models.scoring import lm_head_parts
    >>> body, weight, bias, softcap = lm_head_parts(model)  # doctest: +SKIP
    >>> hidden = body(input_ids=ids).last_hidden_state[0, :-1]  # (T - 1, H) on CUDA  # doctest: +SKIP
    >>> logp, entropy = logprob_entropy_fused(hidden, weight, ids[0, 1:], bias=bias, softcap=softcap)  # doctest: +SKIP
    """
    import torch

    n_rows, vocab, device = hidden.shape[0], weight.shape[0], hidden.device
    logp = torch.empty(n_rows, dtype=torch.float32, device=device)
    entropy = torch.empty_like(logp)
    raw = torch.empty(min(chunk_rows, n_rows), vocab, dtype=hidden.dtype, device=device)  # (C, V) model dtype
    targets = targets.to(device)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        logits = torch.matmul(hidden[start:stop], weight.t(), out=raw[:stop - start])  # the lm_head
        reduce_logits(logits, targets[start:stop], logp[start:stop], entropy[start:stop], bias=bias,
                      temperature=temperature, softcap=softcap)
    return logp, entropy
