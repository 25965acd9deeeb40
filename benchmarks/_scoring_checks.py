"""Pieces of benchmarks/scoring.py's GPU run: Liger's fused linear entropy as one more path, the float64
check of a slice, and the ratio flags. Imports only torch, numpy and reasonlens (a lent GPU has no more).

Liger (liger-kernel >= 0.8.5, `LigerFusedLinearScaledCrossEntropyFunction` in liger_kernel/ops/
fused_linear_scaled_cross_entropy.py) returns per-token NLL and entropy from hidden states and the lm_head
weight. It dispatches by device: on sm90 (H100, H200) to a CuTe-DSL kernel that needs the
nvidia-cutlass-dsl package (liger-kernel[cutedsl]); elsewhere, and on CPU, to its own torch path in
512-row chunks. Where the sm90 kernel cannot load we time that torch path and say so (``liger_impl``).
"""

from __future__ import annotations

RATIO_LIMIT = 1.10  # ours above this times the floor's time or memory is a finding to fix in the kernel
FP64_ROWS = 512     # response rows of the float64 check


def response_rows(model, prompts, responses):
    """Decoder once over prompt + response; the hidden rows that predict the response tokens.

    Returns (rows (N, H) in the model's dtype, targets (N,) long, lm_head weight (V, H), bias or None),
    with N = B * R, sequence by sequence: the order of every path's output.
    """
    import torch

    from reasonlens.models.scoring import lm_head_parts

    body, weight, bias, _ = lm_head_parts(model)
    ids = torch.tensor([p + r for p, r in zip(prompts, responses)], device=weight.device)  # (B, T)
    hidden = body(input_ids=ids, use_cache=False).last_hidden_state  # (B, T, H)
    start = len(prompts[0])
    rows = hidden[:, start - 1:-1].reshape(-1, hidden.shape[-1])  # (N, H)
    return rows, ids[:, start:].reshape(-1), weight, bias


def liger_scorer(device: str, dtype) -> tuple:
    """(op(rows, weight, targets) -> (nll, entropy), what runs) for Liger, or (None, why it cannot run).

    Liger is an optional comparison, so any failure to import or to run a 4-row probe is recorded, not raised.
    """
    import torch

    try:
        from liger_kernel.ops import LigerFusedLinearScaledCrossEntropyFunction as public
        from liger_kernel.ops import fused_linear_scaled_cross_entropy as module
    except Exception as err:  # noqa: BLE001 - ImportError, or a liger built for another torch/triton
        return None, f"skipped: liger-kernel>=0.8.5 not importable ({type(err).__name__}: {err}); " \
                     "pip install 'reasonlens[bench]'"
    candidates = [
        (lambda h, w, t: public.apply(h, w, t, 1.0, -100, 1, True),
         lambda: f"{module._resolve_implementation(torch.device(device)).__name__} (liger's own dispatch)"),
        (lambda h, w, t: module._FusedLinearPPOFallbackFunction.apply(h, w, t, 1.0, -100, True),
         lambda: "_FusedLinearPPOFallbackFunction: liger's torch path, 512-row chunks"),
    ]
    probe = (torch.randn(4, 64, device=device, dtype=dtype), torch.randn(128, 64, device=device, dtype=dtype),
             torch.zeros(4, dtype=torch.long, device=device))  # the sm90 dispatch imports on first use
    failures = []
    for op, name in candidates:
        try:
            op(*probe)
        except Exception as err:  # noqa: BLE001 - e.g. sm90 without nvidia-cutlass-dsl: try the next
            failures.append(f"{type(err).__name__}: {err}")
            continue
        return op, name() + (f" (its dispatch failed: {failures[0]})" if failures else "")
    return None, "skipped: " + "; ".join(failures)


def liger_path(op):
    """A scoring path (model, prompts, responses) -> (2, N) logprobs and entropies through Liger's ``op``."""
    def _liger(model, prompts, responses):
        import torch

        rows, targets, weight, _ = response_rows(model, prompts, responses)
        nll, entropy = op(rows, weight, targets)
        return torch.stack([-nll.float(), entropy.float()]).cpu().numpy()  # (2, N)
    return _liger


def fp64_reference(logits, targets):
    """(log p(target), entropy), each (S,) float64, of float64 ``logits`` (S, V) by log_softmax."""
    import torch

    logp = torch.log_softmax(logits.double(), dim=-1)  # (S, V)
    return logp.gather(1, targets[:, None]).squeeze(1), -(logp.exp() * logp).sum(-1)


def max_rel_diff(a, b) -> float:
    """max |a - b| / max(|b|, 1e-3) over all entries (b the reference), as the benchmark reports it."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((np.abs(a - b) / np.maximum(np.abs(b), 1e-3)).max())


def fp64_errors(model, prompts, responses, outputs, *, fused: bool, rows: int = FP64_ROWS) -> dict:
    """Max relative errors against float64 on the first ``rows`` response rows.

    ``<path>_max_rel_err_vs_fp64``: each path's output against log_softmax of the float64 lm_head of the
    same hidden rows (so it includes the model-dtype rounding of the logits, which every path shares).
    ``ours_kernel_max_rel_err_vs_fp64`` (with ``fused``): the Triton reducer alone, on the slice's logits in
    the model's dtype, against float64 log_softmax of those very logits.
    """
    import numpy as np
    import torch

    with torch.inference_mode():
        hidden, targets, weight, bias = response_rows(model, prompts, responses)
        hidden, targets = hidden[:rows], targets[:rows]  # (S, H), (S,)
        logits64 = hidden.double() @ weight.double().t() + (0 if bias is None else bias.double())  # (S, V)
        reference = torch.stack(fp64_reference(logits64, targets)).cpu().numpy()  # (2, S)
        del logits64
        errors = {f"{name}_max_rel_err_vs_fp64": max_rel_diff(out[:, :len(targets)], reference)
                  for name, out in outputs.items() if out is not None}
        if fused:
            from reasonlens.models.fused_scoring import reduce_logits

            logits = torch.matmul(hidden, weight.t())  # (S, V) in the model's dtype, as ours computes them
            logp, entropy = torch.empty(len(targets), device=logits.device), torch.empty(len(targets),
                                                                                          device=logits.device)
            reduce_logits(logits, targets, logp, entropy, bias=bias)
            exact = torch.stack(fp64_reference(logits.double() + (0 if bias is None else bias.double()), targets))
            errors["ours_kernel_max_rel_err_vs_fp64"] = max_rel_diff(torch.stack([logp, entropy]).cpu().numpy(),
                                                                     exact.cpu().numpy())
    return {**errors, "fp64_rows": int(len(targets)), "fp64_finite": bool(np.isfinite(reference).all())}


def ratio_flags(case: dict, limit: float = RATIO_LIMIT) -> list[str]:
    """One line per ratio of ours over the floor (time, CPU time where measured, memory) above ``limit``."""
    flags = []
    for kind in ("time", "cpu_time", "mem"):
        ratio = case.get(f"ours_{kind}_ratio_vs_floor")
        if ratio is not None and ratio > limit:
            flags.append(f"{case['case']}: ours {kind} {ratio:.3f}x the floor > {limit:.2f}x")
    return flags
