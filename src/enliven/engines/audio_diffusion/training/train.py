"""The training run: preprocessing, then the stages in order, on one process or many under ``torchrun``.

``torchrun --nproc-per-node N -m enliven train audio-diffusion CONFIG`` starts N processes; each joins the process
group (NCCL on GPUs, gloo on the CPU), takes its share of the preprocessing, then trains with
DistributedDataParallel: each process draws its own batch, gradients are averaged. One process alone needs no
``torchrun``. On a GPU the forward runs under autocast (``run.mixed_precision``: bf16, or fp16 with loss scaling);
the weights and the optimizer stay fp32. Gradient checkpointing: the denoiser's own, of its audio and motion
modules.

Each step, per process: a batch (``data.Clips``), noise with Hallo's offset, a timestep per clip, the noisy
latents; the drops (reference, audio, motion frames) drawn with the stage's ratios; the prediction against the
velocity (or the noise) with min-SNR weights. Every draw is keyed by (seed, stage, step, process), so a resumed run
repeats the uninterrupted one. A fixed batch (fixed noise and timesteps, nothing dropped) is scored at each
stage's start and end (and every ``run.eval_every`` steps): the ``eval/loss`` in the logs.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from enliven.engines.audio_diffusion.training import state as saved
from enliven.engines.audio_diffusion.training.config import STAGES, digest
from enliven.engines.audio_diffusion.training.net import (
    Drops,
    TrainingNet,
    loss_of,
    noise_scheduler,
    snr_weights,
    target_of,
    trainable,
)
from enliven.errors import EnlivenError

EVAL_STEP = 2**31 - 1  # the key of the fixed evaluation batch (never a training step)
EVAL_SAMPLES = 2


class Processes:
    """This process's place among those ``torchrun`` started (one alone without it)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.world == 1:
            return [tensor]
        tensor = tensor.to(self.device)
        out = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(out, tensor)
        return [t.cpu() for t in out]

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _generator(*key: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.default_rng(list(key)).integers(2**62)))


def _autocast(device: torch.device, precision: str):
    if device.type != "cuda" or precision == "no":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _noisy(scheduler, batch, noise_cfg: dict, generator: torch.Generator, timesteps: torch.Tensor | None = None):
    latents = batch.target
    noise = torch.randn(latents.shape, generator=generator)
    if noise_cfg["noise_offset"] > 0:
        noise = noise + noise_cfg["noise_offset"] * torch.randn((*latents.shape[:2], 1, 1, 1), generator=generator)
    if timesteps is None:
        timesteps = torch.randint(0, noise_cfg["train_timesteps"], (latents.shape[0],), generator=generator)
    noise, timesteps = noise.to(latents.device), timesteps.to(latents.device)
    return scheduler.add_noise(latents, noise, timesteps), target_of(scheduler, latents, noise, timesteps), timesteps


class Trainer:
    def __init__(self, config: dict, procs: Processes, say=print):
        from enliven.engines.audio_diffusion.training.init import blank_latent, initial_modules

        self.config, self.procs, self.say = config, procs, say
        self.run_dir = Path(config["run"]["output"])
        torch.manual_seed(config["run"]["seed"])
        self.modules, self.unet_config = initial_modules(config)
        for module in self.modules.values():
            module.to(procs.device)
        self.scheduler = noise_scheduler(config["noise"])
        self.blank = blank_latent(self.modules["vae"], config["data"]["size"])
        self.net = TrainingNet(self.modules)
        if config["run"]["gradient_checkpointing"]:
            # The denoiser's own checkpointing of its audio and motion modules (the video stages' memory). Not
            # diffusers' block checkpointing: its recomputation, during backward, runs the reference attention
            # again after ``denoise`` has cleared the per-call reference tokens it reads.
            self.modules["denoiser"].frame_context.checkpointing = True
        self.writer = None

    # --- one prediction --------------------------------------------------------------------------------------------

    def loss(self, model, batch, stage: str, generator: torch.Generator, drops: Drops,
             timesteps: torch.Tensor | None = None) -> torch.Tensor:
        noisy, target, timesteps = _noisy(self.scheduler, batch, self.config["noise"], generator, timesteps)
        with _autocast(self.procs.device, self.config["run"]["mixed_precision"]):
            prediction = model(batch, noisy, timesteps, drops, video=stage != "image", blank=self.blank,
                               speed=stage == "speed")
        gamma = self.config["noise"]["snr_gamma"]
        weights = snr_weights(self.scheduler, timesteps, gamma) if gamma > 0 else None
        return loss_of(prediction, target, weights)

    @torch.no_grad()
    def evaluate(self, clips, stage: str, index: int) -> float:
        seed = self.config["run"]["seed"]
        batch = clips.batch(seed * 3 + index, EVAL_STEP, self.procs.rank, EVAL_SAMPLES,
                            video=stage != "image").to(self.procs.device)
        total = self.config["noise"]["train_timesteps"]
        timesteps = torch.linspace(total * 0.1, total * 0.9, EVAL_SAMPLES).long()
        value = self.loss(self.net, batch, stage, _generator(seed, index, EVAL_STEP, self.procs.rank), Drops(),
                          timesteps)
        return self.procs.mean(float(value))

    # --- checkpoints -----------------------------------------------------------------------------------------------

    def _rng(self) -> dict[str, torch.Tensor]:
        out = {}
        for rank, value in enumerate(self.procs.gather(torch.get_rng_state())):
            out[f"rank{rank}.cpu"] = value
        if self.procs.device.type == "cuda":
            for rank, value in enumerate(self.procs.gather(torch.cuda.get_rng_state(self.procs.device))):
                out[f"rank{rank}.cuda"] = value
        return out

    def checkpoint(self, stage: str, step: int, total: int, optimizer, names, scaler) -> None:
        rng = self._rng()  # every process takes part in the gather
        if self.procs.main:
            tensors, groups = saved.optimizer_state(optimizer, names)
            if scaler is not None:
                tensors["scaler.scale"] = scaler.get_scale() * torch.ones(())
            info = {"stage": stage, "stage_step": step, "total_step": total, "world_size": self.procs.world,
                    "param_groups": groups, "config": digest(self.config), "settings": self.config}
            path = saved.save_checkpoint(self.run_dir, total, info, self.modules, tensors, rng,
                                         self.config["run"]["keep_checkpoints"])
            saved.export_weights(self.run_dir, self.modules, self.unet_config)
            self.say(f"checkpoint {path.name} ({stage} step {step}); engine weights in {self.run_dir / 'weights'}")
        self.procs.barrier()

    def resume(self, where: str) -> dict | None:
        if where == "none":
            return None
        if where == "latest":
            found = saved.checkpoints(self.run_dir)
            if not found:
                return None
            folder = found[-1]
        else:
            folder = Path(where)
        info, model, optimizer, rng = saved.read_checkpoint(folder)
        if info["world_size"] != self.procs.world:
            raise EnlivenError(f"{folder} was made by {info['world_size']} processes, this run has "
                               f"{self.procs.world}: the same count is needed to resume exactly")
        saved.load_model(self.modules, model)
        torch.set_rng_state(rng[f"rank{self.procs.rank}.cpu"])
        if self.procs.device.type == "cuda" and f"rank{self.procs.rank}.cuda" in rng:
            torch.cuda.set_rng_state(rng[f"rank{self.procs.rank}.cuda"], self.procs.device)
        self.say(f"resuming from {folder.name}: {info['stage']} step {info['stage_step']}")
        return {"info": info, "optimizer": optimizer}

    # --- the stages ------------------------------------------------------------------------------------------------

    def train(self, clips, resume: str = "latest") -> dict:
        from torch.nn.parallel import DistributedDataParallel

        run, procs = self.config["run"], self.procs
        if procs.main:
            from enliven.engines.audio_diffusion.training.events import EventWriter

            self.writer = EventWriter(self.run_dir / "logs")
        resumed = self.resume(resume)
        done_stage = STAGES.index(resumed["info"]["stage"]) if resumed else -1
        total = resumed["info"]["total_step"] if resumed else 0
        summary: dict = {}
        for index, stage in enumerate(STAGES):
            settings = self.config["stages"][stage]
            steps = settings["steps"]
            if steps == 0 or index < done_stage:
                continue
            start = resumed["info"]["stage_step"] if resumed and index == done_stage else 0
            if start >= steps:
                continue
            pairs = trainable(self.modules, stage)
            names, parameters = [n for n, _ in pairs], [p for _, p in pairs]
            opt = self.config["optimizer"]
            optimizer = torch.optim.AdamW(parameters, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]),
                                          weight_decay=opt["weight_decay"], eps=opt["eps"])
            warmup = max(opt["warmup_steps"], 1)

            def ramp(done: int, warmup: int = warmup) -> float:
                return min(1.0, (done + 1) / warmup)

            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, ramp)
            use_scaler = procs.device.type == "cuda" and run["mixed_precision"] == "fp16"
            scaler = torch.amp.GradScaler("cuda") if use_scaler else None
            if resumed and index == done_stage:
                tensors = resumed["optimizer"]
                if scaler is not None and "scaler.scale" in tensors:
                    scaler.update(float(tensors.pop("scaler.scale")))
                tensors = {k: v.to(procs.device) if not k.endswith(".step") else v for k, v in tensors.items()
                           if k.startswith("state.")}
                saved.load_optimizer(optimizer, names, tensors, resumed["info"]["param_groups"])
                with warnings.catch_warnings():  # stepping the schedule to where it was, before any optimizer step
                    warnings.simplefilter("ignore", UserWarning)
                    for _ in range(start):
                        schedule.step()
            model = self.net
            if procs.world > 1:
                model = DistributedDataParallel(self.net, find_unused_parameters=True)
            first = self.evaluate(clips, stage, index)
            if procs.main:
                self.writer.scalars(total, {f"eval/{stage}": first})
                count = sum(p.numel() for p in parameters)
                self.say(f"stage {stage}: {len(parameters)} tensors, {count:,} parameters trained; "
                         f"eval loss {first:.5f} at step {start}")
            summary[stage] = {"eval_start": first, "losses": []}
            seed = run["seed"]
            ratio = {k: settings.get(k, 0.0) for k in ("uncond_ratio", "uncond_image_ratio", "uncond_audio_ratio",
                                                       "start_ratio")}
            clock, samples = time.perf_counter(), 0
            for step in range(start, steps):
                generator = _generator(seed, index, step, procs.rank)
                draws = torch.rand(3, generator=generator).tolist()
                drops = Drops(reference=draws[0] < ratio["uncond_ratio"] + ratio["uncond_image_ratio"],
                              audio=draws[1] < ratio["uncond_audio_ratio"], motion=draws[2] < ratio["start_ratio"])
                batch = clips.batch(seed * 3 + index, step, procs.rank, run["batch_size"],
                                    video=stage != "image").to(procs.device)
                loss = self.loss(model, batch, stage, generator, drops)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, opt["max_grad_norm"])
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                schedule.step()
                total += 1
                samples += run["batch_size"]
                value = procs.mean(float(loss.detach()))
                summary[stage]["losses"].append(value)
                if not math.isfinite(value):
                    raise EnlivenError(f"the loss became {value} at {stage} step {step + 1}: lower optimizer.lr?")
                if procs.main and ((step + 1) % run["log_every"] == 0 or step + 1 == steps):
                    elapsed = time.perf_counter() - clock
                    self.writer.scalars(total, {f"loss/{stage}": value, f"lr/{stage}": schedule.get_last_lr()[0],
                                                "samples_per_second_per_process": samples / max(elapsed, 1e-9)})
                if run["eval_every"] and (step + 1) % run["eval_every"] == 0 and step + 1 < steps:
                    score = self.evaluate(clips, stage, index)
                    if procs.main:
                        self.writer.scalars(total, {f"eval/{stage}": score})
                if (step + 1) % run["checkpoint_every"] == 0 or step + 1 == steps:
                    self.checkpoint(stage, step + 1, total, optimizer, names, scaler)
            elapsed = time.perf_counter() - clock
            last = self.evaluate(clips, stage, index)
            summary[stage] |= {"eval_end": last, "samples_per_second_per_process": samples / max(elapsed, 1e-9)}
            if procs.main:
                self.writer.scalars(total, {f"eval/{stage}": last})
                self.say(f"stage {stage} done at step {steps}: eval loss {first:.5f} -> {last:.5f}")
            resumed = None
        if self.writer is not None:
            self.writer.close()
        return summary


def run_training(config: dict, resume: str = "latest", preprocess_only: bool = False, say=print) -> dict:
    """Preprocess (each process its share), then train; returns per stage the eval losses, the training losses and
    the throughput (rank 0's view; every process gets the same averaged values)."""
    from enliven.engines.audio_diffusion.training.data import Clips
    from enliven.engines.audio_diffusion.training.preprocess import preprocess

    procs = Processes()
    quiet = (lambda msg: None) if not procs.main else say
    try:
        trainer = Trainer(config, procs, quiet)
        paths = preprocess(config, trainer.modules, procs.rank, procs.world, say=say)
        procs.barrier()
        if preprocess_only:
            return {}
        return trainer.train(Clips(paths, config), resume)
    finally:
        procs.close()
