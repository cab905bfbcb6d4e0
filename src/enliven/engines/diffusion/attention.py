"""Reference attention (Animate Anyone / Follow-Your-Emoji / EMO style) through diffusers' extension points.

A 2-D UNet (the *reference net*) runs once on the reference picture's latent at timestep 0. The input of the
self-attention of each of its transformer blocks (the ``norm1`` output, B × tokens × C) is recorded with a
forward hook. In the denoiser, the self-attention of the transformer block at the same module path uses
keys and values ``concat([own tokens, reference tokens])`` — an attention processor, set with diffusers'
``set_processor``. Queries stay the frame's own, so each frame attends to the picture it should look like.

For classifier-free guidance, the unconditional rows of the batch attend to themselves only (as the releases
do): ``FrameContext.use_reference`` says, per video in the batch, whether it sees the reference.

The denoiser runs a batch of B videos of F frames as B·F pictures, video-major; ``FrameContext`` carries F
and the per-call extras (reference tokens, which videos use them, what to add after ``conv_in``) to the
processors and hooks, which hold the same context object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class FrameContext:
    frames: int = 1
    reference: dict[str, torch.Tensor] = field(default_factory=dict)  # block path → (B, tokens, C)
    use_reference: torch.Tensor | None = None  # (B,) bool; None: every video uses the reference
    input_residual: torch.Tensor | None = None  # (B·F, C0, h, w), added to conv_in's output


def transformer_blocks(unet: nn.Module) -> dict[str, nn.Module]:
    """The spatial transformer blocks of a diffusers 2-D UNet, by module path, in the order the forward runs
    them (down blocks, mid block, up blocks); temporal modules are not included."""
    from diffusers.models.attention import BasicTransformerBlock

    def blocks_of(prefix: str, module: nn.Module) -> dict[str, nn.Module]:
        return {
            f"{prefix}.{name}": sub
            for name, sub in module.named_modules()
            if isinstance(sub, BasicTransformerBlock) and not name.startswith("motion_modules.")
        }

    found: dict[str, nn.Module] = {}
    for i, block in enumerate(unet.down_blocks):
        found |= blocks_of(f"down_blocks.{i}", block)
    found |= blocks_of("mid_block", unet.mid_block)
    for i, block in enumerate(unet.up_blocks):
        found |= blocks_of(f"up_blocks.{i}", block)
    return found


class _Finished(Exception):
    """Raised by the hook on the last block the reference pass needs: nothing after it matters."""


def capture_reference_tokens(unet: nn.Module, run, stop_after: str | None = None) -> dict[str, torch.Tensor]:
    """Run ``run()`` (a forward of ``unet``) and return each transformer block's ``norm1`` output.

    ``stop_after``: the path of the block after whose ``norm1`` the forward is cut short (the reference net
    of the releases has no layers past it).
    """
    tokens: dict[str, torch.Tensor] = {}
    handles = []
    for name, block in transformer_blocks(unet).items():

        def record(_module, _inputs, output, name=name):
            tokens[name] = output
            if name == stop_after:
                raise _Finished

        handles.append(block.norm1.register_forward_hook(record))
    try:
        run()
    except _Finished:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return tokens


def attend(attn, query_states: torch.Tensor, context_states: torch.Tensor) -> torch.Tensor:
    """diffusers ``Attention`` math (no mask, no norms) with PyTorch's scaled-dot-product attention."""
    q, k, v = attn.to_q(query_states), attn.to_k(context_states), attn.to_v(context_states)
    batch, heads = q.shape[0], attn.heads
    head_dim = q.shape[-1] // heads
    q, k, v = (x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(q.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    return out / attn.rescale_output_factor


class ReferenceAttnProcessor:
    """Self-attention whose keys and values also hold the reference net's tokens for this block.

    Without tokens in the context (a plain call), it is ordinary self-attention.
    """

    def __init__(self, name: str, context: FrameContext):
        self.name = name
        self.context = context

    def reference_rows(self, reference: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        """The reference tokens each of the B·F rows attends to (B·F, n, C): each video's on its own frames."""
        frames = self.context.frames
        per_row = reference.to(hidden_states.dtype).repeat_interleave(frames, dim=0)  # (B·F, n, C)
        if per_row.shape[0] != hidden_states.shape[0]:
            videos = hidden_states.shape[0] // frames
            raise ValueError(f"{videos} videos in the batch but reference tokens for {reference.shape[0]}")
        return per_row

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **_):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("reference attention replaces self-attention only (no cross states, no mask)")
        reference = self.context.reference.get(self.name)
        if reference is None:
            return attend(attn, hidden_states, hidden_states)
        per_row = self.reference_rows(reference, hidden_states)
        use = self.context.use_reference
        if use is None or bool(use.all()):
            return attend(attn, hidden_states, torch.cat([hidden_states, per_row], dim=1))
        rows = use.to(hidden_states.device).repeat_interleave(self.context.frames)
        out = torch.empty_like(hidden_states)
        if rows.any():
            with_ref = hidden_states[rows]
            out[rows] = attend(attn, with_ref, torch.cat([with_ref, per_row[rows]], dim=1))
        plain = hidden_states[~rows]
        out[~rows] = attend(attn, plain, plain)
        return out


def install_reference_attention(unet: nn.Module, context: FrameContext) -> None:
    """Give every spatial self-attention of ``unet`` a ``ReferenceAttnProcessor`` reading ``context``."""
    for name, block in transformer_blocks(unet).items():
        block.attn1.set_processor(ReferenceAttnProcessor(name, context))


def install_input_residual(unet: nn.Module, context: FrameContext) -> None:
    """Add ``context.input_residual`` (when set) to the output of ``unet.conv_in`` — where the releases add their
    pose / landmark guider's features."""

    def add(_module, _inputs, output):
        residual = context.input_residual
        return output if residual is None else output + residual.to(output.dtype)

    unet.conv_in.register_forward_hook(add)
