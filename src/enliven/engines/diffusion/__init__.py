"""Parts shared by the diffusion engines (Follow-Your-Emoji now, EMO next): window schedules, reference
attention, AnimateDiff-style temporal modules, the DDIM schedule, guidance and windowed sampling.

``windows`` is plain index math; the modules that need torch, diffusers or transformers import them
themselves, so importing this package stays cheap.
"""
