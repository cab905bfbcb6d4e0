"""Follow-Your-Emoji (``landmark-diffusion``), in progress (issue 10).

Landed: the landmark pictures drawn as the release draws them (``drawing``), its motion alignment on our
landmark model (``alignment``), and the networks with the official weights and sampling (``pipeline``:
``load_official``, ``generate``). Not yet: the engine adapter, so the name is not registered and
``--engine landmark-diffusion`` is not offered.
"""
