"""The training config: one dataclass per section, a docstring under every field (the YAML reference).

Loaded by clamkit.config.load_config from configs/*.yaml plus `--set section.field=value`; the
resolved config (with derived fields filled, e.g. lam.weight) is saved as RUN/config.yaml and
stored in every checkpoint and in policy.pt.

Defaults are the state recipe (MetaWorld-like, DESIGN §3). Stage 1 is short (1,000 steps): on validation
seeds 2,000 LAM steps did worse. Within it, the checkpoint with the lowest reconstruction error on held-out
unlabelled episodes is kept (`lam.select=fdm`, label-free); the older rule — agree best with a supervised IDM
trained on the labelled play (`disagreement`) — copies VPT's labeller and lost to it (README, learning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clamkit.errors import ConfigError
from clamkit.outcomes import EVAL_SEED, SIM_KINDS

ALGOS = ("clam", "bc-play", "bc-expert", "vq", "vpt")


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"config key '{key}': {msg}")


def _choice(value: str, key: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, f"{value!r} is not one of {', '.join(choices)}")


@dataclass
class DataConfig:
    obs: str = "auto"
    """observation the models read: "state", "image", or "auto" (state when the datasets have it, else image)"""
    image_size: int = 0
    """side the images are resized to inside the models, e.g. 64 or 84 (0: the dataset's own size)"""
    holdout: float = 0.1
    """fraction of episodes held out (labelled: decoder probe and IDM selection; unlabelled: policy selection)"""
    probe_windows: int = 2048
    """fixed subsample of unlabelled windows scored by the disagreement and relabel probes"""
    storage: str = "auto"
    """where observations live during training: "ram", "memmap" (read per batch from the dataset files), or "auto" (state: ram; images: ram under 2 GiB)"""
    std_floor: float = 0.01
    """state normalisation divides by max(std, std_floor), so constant dimensions stay finite at deploy time"""
    shift: int = 0
    """pixels: random-shift augmentation of training batches by up to this many pixels (DrQ: pad with edge
    pixels, crop back at a random offset; one offset for every frame of a window). 0: off"""

    def __post_init__(self):
        _choice(self.obs, "data.obs", ("auto", "state", "image"))
        _choice(self.storage, "data.storage", ("auto", "ram", "memmap"))
        _check(self.image_size == 0 or 16 <= self.image_size <= 512, "data.image_size", "must be 0 or 16..512")
        _check(0.0 <= self.holdout < 0.9, "data.holdout", "must be in [0, 0.9)")
        _check(self.probe_windows >= 16, "data.probe_windows", "must be >= 16")
        _check(self.std_floor > 0, "data.std_floor", "must be > 0")
        _check(0 <= self.shift <= 16, "data.shift", "must be in 0..16")


@dataclass
class ModelConfig:
    la_dim: int = 8
    """latent action dimension (continuous for clam, codebook vector size for vq)"""
    hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    """state models: MLP hidden widths of the IDM, FDM, policy and supervised IDM"""
    decoder_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """action decoder d(z) MLP hidden widths"""
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    """pixel models: conv widths, one stride-2 stage each (IDM and policy encoders, U-Net FDM levels)"""
    image_hidden: list[int] = field(default_factory=lambda: [512])
    """pixel models: MLP head widths after the conv encoder"""
    fdm_size: int = 0
    """pixel FDM: side at which ô_{t+1} is predicted, dividing the image side (e.g. 32 for 64x64 images: ~4x
    cheaper on a CPU); 0: full resolution"""
    idm_motion: bool = False
    """pixel IDMs read o_t and the frame differences o_t - o_{t-1}, o_{t+1} - o_t instead of the three frames:
    the same information, with the motion (a few pixels per step at 64x64) made explicit"""

    def __post_init__(self):
        _check(1 <= self.la_dim <= 1024, "model.la_dim", "must be in 1..1024")
        for k in ("hidden", "decoder_hidden", "channels", "image_hidden"):
            v = getattr(self, k)
            _check(all(w >= 1 for w in v), f"model.{k}", "widths must be >= 1")
        _check(len(self.channels) >= 1, "model.channels", "needs at least one stage")
        _check(self.fdm_size == 0 or self.fdm_size >= 8, "model.fdm_size", "must be 0 or >= 8")


@dataclass
class OptimConfig:
    batch_size: int = 128
    """minibatch per rank (unlabelled and labelled batches each have this size)"""
    lr: float = 3e-4
    """AdamW learning rate of the IDM, FDM, policies"""
    decoder_lr: float = 1e-3
    """AdamW learning rate of the action decoder"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    grad_clip: float = 1.0
    """clip the global gradient norm (0: off)"""
    warmup: int = 50
    """linear learning-rate warm-up steps at the start of every stage"""
    schedule: str = "constant"
    """learning rate after the warm-up: "constant", or "cosine" (decays to 0 at each stage's last step, so the
    last checkpoints are not the noisy iterates of a constant rate)"""

    def __post_init__(self):
        _check(self.batch_size >= 2, "optim.batch_size", "must be >= 2")
        _check(self.lr > 0 and self.decoder_lr > 0, "optim.lr", "learning rates must be > 0")
        _check(self.weight_decay >= 0 and self.grad_clip >= 0 and self.warmup >= 0, "optim", "weight_decay, grad_clip, warmup must be >= 0")
        _choice(self.schedule, "optim.schedule", ("constant", "cosine"))


@dataclass
class LAMConfig:
    steps: int = 1000
    """stage 1 steps (short on purpose: longer LAM training made CLAM worse in the prototype)"""
    weight: float | None = None
    """λ of the decoder term MSE(d(z), a) on labelled play windows (None: 1.0 for state, 0.01 for pixels)"""
    select: str = "fdm"
    """which stage-1 checkpoint to keep, each label-free: "fdm" (lowest reconstruction error on held-out
    pool/unlabelled episodes; chosen on validation seeds, README), "disagreement" (decoded relabels closest to a
    supervised IDM's on the unlabelled windows — VPT's labeller, so CLAM at best ties its labels), "decoder"
    (lowest decoder error on held-out play), "last" """
    eval_every: int = 50
    """steps between probes (decoder R²/MSE, disagreement, relabel error) and selection candidates"""
    fdm_on_labelled: bool = True
    """also train the IDM/FDM reconstruction on the labelled play windows (more coverage)"""
    fdm_input: str = "latent"
    """what the forward model is conditioned on: "latent" z_t (the paper) or "action", the decoded d(z_t) (true a_t
    on labelled windows): one label-grounded dynamics model that grounds the decoder on every unlabelled window.
    configs/widowx-image-cpu.yaml sets "action" (better on pixel validation seeds); state recipes keep "latent" (better on MetaWorld validation)"""

    def __post_init__(self):
        _check(self.steps >= 1, "lam.steps", "must be >= 1")
        _check(self.weight is None or self.weight >= 0, "lam.weight", "must be >= 0")
        _choice(self.select, "lam.select", ("disagreement", "fdm", "decoder", "last"))
        _check(self.eval_every >= 1, "lam.eval_every", "must be >= 1")
        _choice(self.fdm_input, "lam.fdm_input", ("latent", "action"))


@dataclass
class IDMConfig:
    steps: int = 2000
    """steps of the supervised IDM on labelled play windows: clam's disagreement reference, vpt's labeller"""
    eval_every: int = 100
    """steps between validation passes on held-out play (also used by the vq decoder stage)"""
    select: str = "val"
    """"val": keep the step with the lowest held-out error (the early stopping every baseline gets); "last" """

    def __post_init__(self):
        _check(self.steps >= 1 and self.eval_every >= 1, "idm.steps", "steps and eval_every must be >= 1")
        _choice(self.select, "idm.select", ("val", "last"))


@dataclass
class PolicyConfig:
    steps: int = 3000
    """steps of the final policy: latent BC π(o)->z (clam, vq) or action BC (bc-play, bc-expert, vpt)"""
    eval_every: int = 250
    """steps between validation passes on held-out unlabelled episodes (held-out play for bc-play)"""
    select: str = "val"
    """"val": keep the policy with the lowest held-out loss; "last" """
    space: str = "latent"
    """latent policies (clam): "latent" regresses π(o) on the relabel z (the paper); "action" regresses
    the deployed d(π(o)) on the decoded relabel d(z) through the frozen decoder (still label-free)"""

    def __post_init__(self):
        _check(self.steps >= 1 and self.eval_every >= 1, "policy.steps", "steps and eval_every must be >= 1")
        _choice(self.select, "policy.select", ("val", "last"))
        _choice(self.space, "policy.space", ("latent", "action"))


@dataclass
class VQConfig:
    codes: int = 64
    """codebook size of the discrete (LAPO-style) baseline"""
    beta: float = 0.25
    """commitment loss weight"""
    decoder_steps: int = 2000
    """steps of the separately trained decoder (play windows, frozen latents); selected like idm.select"""

    def __post_init__(self):
        _check(self.codes >= 2, "vq.codes", "must be >= 2")
        _check(self.beta >= 0, "vq.beta", "must be >= 0")
        _check(self.decoder_steps >= 1, "vq.decoder_steps", "must be >= 1")


@dataclass
class EvalConfig:
    episodes: int = 0
    """after training, export RUN/bundle and run it in simulation through the runtime loop (clam-eval's
    code path: the same loop the robot runs) over this many seeded episodes; 0 = off"""
    env: str = ""
    """metaworld:TASK | dmc:DOMAIN-TASK | widowx-sim:TASK; "" = the first unlabelled dataset's robot and task"""
    seed: int = EVAL_SEED
    """episode i uses seed + i (far from clam-record's seeds, so the scenes are unseen in training)"""
    max_steps: int = 0
    """steps per episode; 0 = the first unlabelled episode's length (the horizon the policy was shown)"""

    def __post_init__(self):
        _check(self.episodes >= 0, "eval.episodes", "must be >= 0")
        _check(self.max_steps >= 0, "eval.max_steps", "must be >= 0")
        _check(0 <= self.seed < 2**31, "eval.seed", "must be in 0 .. 2**31-1")
        _check(self.env == "" or self.env.partition(":")[0] in SIM_KINDS, "eval.env",
               f"{self.env!r} is not metaworld:TASK, dmc:DOMAIN-TASK or widowx-sim:TASK")


@dataclass
class RunConfig:
    seed: int = 0
    """seeds python, numpy and torch (and, with the rank, each rank's data sampler)"""
    device: str = "auto"
    """"auto" (cuda when available), "cpu", "cuda", "cuda:N" """
    amp: bool = False
    """bfloat16 autocast on CUDA (ignored on CPU)"""
    compile: bool = False
    """torch.compile the training losses on CUDA (ignored on CPU)"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    log_every: int = 25
    """steps between metrics.jsonl / TensorBoard records"""
    ckpt_every: int = 500
    """steps between checkpoints (also written at every stage end)"""
    deterministic: bool = True
    """cudnn deterministic, no benchmark autotuning"""
    progress: bool = True
    """tqdm progress bar"""

    def __post_init__(self):
        _check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"), "run.device",
               f"{self.device!r} is not auto, cpu, cuda or cuda:N")
        _check(self.log_every >= 1 and self.ckpt_every >= 1, "run.log_every", "log_every and ckpt_every must be >= 1")
        _check(self.threads >= 0, "run.threads", "must be >= 0")
        _check(0 <= self.seed < 2**32, "run.seed", "must be in 0 .. 2**32-1 (numpy's seed range)")


@dataclass
class TrainConfig:
    algo: str = "clam"
    """clam | bc-play (BC on play labels) | bc-expert (oracle: BC on the unlabelled set's hidden labels) | vq (discrete LAPO-style latent) | vpt (supervised IDM relabels, then BC)"""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lam: LAMConfig = field(default_factory=LAMConfig)
    idm: IDMConfig = field(default_factory=IDMConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    vq: VQConfig = field(default_factory=VQConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        _choice(self.algo, "algo", ALGOS)
