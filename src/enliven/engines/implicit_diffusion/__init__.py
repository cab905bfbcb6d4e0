"""HunyuanPortrait (``implicit-diffusion``): implicit appearance and motion conditions on Stable Video Diffusion."""
