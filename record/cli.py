"""clam-record: make datasets from scripted experts, noisy play, or any robot.

Datasets are written in the clamkit format (clamkit.dataset); re-running the same command on an
interrupted recording continues it.
"""

from __future__ import annotations

import json

import click

from clamkit.cli import CONTEXT_SETTINGS, handle_errors
from clamkit.dataset import DatasetWriter
from clamkit.robot.widowx_sim import TASKS as WIDOWX_TASKS
from clamkit.robot.widowx_sim import VisualVariation
from clamkit.specs import ObservationSpec

POLICIES = click.Choice(["expert", "noisy-expert", "play"])


def _common(fn):
    """Options every recorder shares."""
    opts = [
        click.option("--episodes", type=click.IntRange(1), default=10, show_default=True, help="Episodes in the dataset (an existing dataset is topped up to this count)."),
        click.option("--policy", "policy_name", type=POLICIES, default="expert", show_default=True,
                     help="expert: scripted solver; noisy-expert: the expert with random actions (see --noise-range); "
                          "play: task-agnostic noisy labelled data."),
        click.option("--noise-range", type=(click.FloatRange(0, 1), click.FloatRange(0, 1)), default=(0.0, 1.0), show_default=True,
                     help="noisy-expert: per episode, the probability of a uniformly random action is drawn from U(LO, HI); "
                          "0 1 spans expert to random (an unlabelled pool), e.g. 0.5 1 gives low-return episodes."),
        click.option("--action-noise", type=click.FloatRange(0), default=0.1, show_default=True,
                     help="noisy-expert: std of the Gaussian noise on the expert's actions, as a fraction of the half-range."),
        click.option("--out", type=click.Path(file_okay=False), required=True, help="Dataset directory to write."),
        click.option("--image-size", type=click.IntRange(16, 512), default=None, help="Also store camera frames of this square size (e.g. 64 or 84)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Episode i uses seed + i."),
        click.option("--max-steps", type=click.IntRange(2), default=None, help="Steps per episode (default: the environment's)."),
        click.option("--no-actions", is_flag=True, help="Store observations only (unlabelled video)."),
        click.option("--end-after-success", type=click.IntRange(0), default=None, metavar="K",
                     help="End each episode K steps after the task first succeeds, as demonstrations stop once the "
                          "task is done (default: every episode runs to --max-steps)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _choose(policy_name, robot, expert, play, noise_range, action_noise):
    """The recording policy: the scripted expert, the expert made noisy, or task-agnostic play."""
    if policy_name == "play":
        return play()
    if policy_name == "expert":
        return expert()
    from clamkit.record.noisy import NoisyExpert

    if noise_range[0] > noise_range[1]:
        raise click.BadParameter(f"LO {noise_range[0]} > HI {noise_range[1]}", param_hint="--noise-range")
    return NoisyExpert(expert(), robot.action_spec, noise_range, action_noise)


def _record(robot, policy, *, task, episodes, out, image_size, seed, max_steps, no_actions, quiet, policy_name, camera_name=None,
            extra_info=None, end_after_success=None):
    from clamkit.record.episodes import record_episodes
    from clamkit.robot.sim_camera import SimCamera

    with robot:
        keys = dict(robot.observation_spec.keys)
        camera = None
        if image_size:
            camera = SimCamera(robot, image_size, image_size)
            keys["image"] = camera.spec
        info = {"policy": policy_name, "camera": camera_name if image_size else None} | (extra_info or {})
        if end_after_success is not None:
            info["end_after_success"] = end_after_success
        writer = DatasetWriter(out, observation=ObservationSpec(keys), action=robot.action_spec, fps=robot.fps,
                               robot=robot.name, task=task, info=info)
        summary = record_episodes(robot, policy, writer, episodes, seed=seed, max_steps=max_steps, camera=camera,
                                  labelled=not no_actions, progress=not quiet, end_after_success=end_after_success)
    summary["out"] = str(out)
    click.echo(json.dumps(summary))


@click.group(context_settings=CONTEXT_SETTINGS)
def main():
    """Record clamkit datasets.

    \b
    Examples:
      clam-record metaworld --task reach-v3 --episodes 100 --policy expert --out data/reach-expert
      clam-record metaworld --task reach-v3 --episodes 50 --policy play --out data/reach-play
      clam-record metaworld --task reach-v3 --episodes 1000 --policy noisy-expert --noise-range 0 1 --no-actions --out data/reach-pool
      clam-record dmc --task reacher-easy --episodes 20 --policy expert --out data/reacher
      clam-record widowx-sim --task reach-block --episodes 50 --image-size 64 --out data/wx-reach
    """


@main.command()
@click.option("--task", default="reach-v3", show_default=True, help="MetaWorld v3 task name.")
@click.option("--camera", default="corner", show_default=True, type=click.Choice(["corner"]), help="Camera for --image-size.")
@_common
@handle_errors
def metaworld(task, camera, max_steps, policy_name, noise_range, action_noise, **kw):
    """MetaWorld (Sawyer) with its scripted experts or noisy play.

    \b
    Example:
      clam-record metaworld --task reach-v3 --episodes 10 --policy expert --out data/reach
    """
    from clamkit.record.metaworld import MetaWorldExpert, MetaWorldPlay
    from clamkit.robot.metaworld import MetaWorldRobot

    max_steps = max_steps or 200
    robot = MetaWorldRobot(task, max_steps=max_steps)
    policy = _choose(policy_name, robot, lambda: MetaWorldExpert(task), lambda: MetaWorldPlay(task), noise_range, action_noise)
    _record(robot, policy, task=task, max_steps=max_steps, policy_name=policy_name, camera_name=camera, **kw)


@main.command()
@click.option("--task", default="reacher-easy", show_default=True, help="DOMAIN-TASK, e.g. reacher-easy, cartpole-swingup.")
@_common
@handle_errors
def dmc(task, max_steps, policy_name, noise_range, action_noise, **kw):
    """dm_control with scripted controllers (reacher, point_mass, cartpole, pendulum) or noisy play.

    \b
    Example:
      clam-record dmc --task cartpole-swingup --episodes 20 --policy expert --out data/cartpole
    """
    from clamkit.record.dmc import expert_policy, play_policy
    from clamkit.robot.dmc import DMCRobot

    max_steps = max_steps or 1000
    robot = DMCRobot(task, max_steps=max_steps)
    policy = _choose(policy_name, robot, lambda: expert_policy(task), lambda: play_policy(task), noise_range, action_noise)
    _record(robot, policy, task=task, max_steps=max_steps, policy_name=policy_name, camera_name="sim", **kw)


@main.command("widowx-sim")
@click.option("--task", default="reach-block", show_default=True, type=click.Choice(WIDOWX_TASKS))
@click.option("--vary", default="none", show_default=True, metavar="WHAT",
              help=f"Visual variation per episode: none, all, or a comma list of {', '.join(VisualVariation.KINDS)}.")
@_common
@handle_errors
def widowx_sim(task, vary, max_steps, policy_name, noise_range, action_noise, **kw):
    """Our MuJoCo WidowX 250s on a tabletop (same 7-D actions as the real arm, 5 Hz).

    \b
    Examples:
      clam-record widowx-sim --task reach-block --episodes 50 --image-size 64 --out data/wx-reach
      clam-record widowx-sim --task place-block --episodes 50 --image-size 64 --vary all --out data/wx-place
    """
    from clamkit.record.widowx_sim import expert_policy, play_policy
    from clamkit.robot.widowx_sim import WidowXSimRobot

    max_steps = max_steps or 50
    # The effort guard is the deployment's rule (clam-eval, clam-run, the rehearsal apply it): play bumps into the
    # task's objects now and then (it would trip it in 4-7 of 20 place-block / close-drawer episodes), and a
    # recording keeps whole episodes.
    robot = WidowXSimRobot(task=task, max_steps=max_steps, vary=vary, effort_limit=None)
    policy = _choose(policy_name, robot, lambda: expert_policy(task, robot), lambda: play_policy(task, robot),
                     noise_range, action_noise)
    _record(robot, policy, task=task, max_steps=max_steps, policy_name=policy_name, camera_name="sim",
            extra_info={"vary": robot.vary.to_json()}, **kw)




@main.command()
@click.argument("dataset", type=click.Path())
@handle_errors
def info(dataset):
    """Validate a dataset (meta.json, every array's header and contents: checksums, NaN/Inf) and print its
    summary (episodes, steps, success rate).

    \b
    Example:
      clam-record info data/reach-expert
    """
    from clamkit.dataset import Dataset

    ds = Dataset(dataset)
    for i in range(len(ds)):
        ds.verify_episode(i)
    click.echo(json.dumps(ds.summary() | {"robot": ds.meta["robot"], "task": ds.meta["task"],
                                          "observation": ds.observation.to_json(), "fps": ds.fps}))


if __name__ == "__main__":
    main()
