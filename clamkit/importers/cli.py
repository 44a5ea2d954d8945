"""clam-import: other tools' recordings -> clamkit datasets, and clamkit datasets -> LeRobot v3."""

from __future__ import annotations

import json

import click

from clamkit.cli import CONTEXT_SETTINGS, handle_errors
from clamkit.importers.common import parse_size


def _size(fn):
    return click.option("--size", default="64", show_default=True,
                        help="Frame size stored: N (square), HxW, or 'native' (keep the source's).")(fn)


def _out(fn):
    return click.option("--out", type=click.Path(file_okay=False), required=True,
                        help="Dataset directory to create (must not exist; written atomically).")(fn)


def _quiet(fn):
    return click.option("--quiet", is_flag=True, help="No progress bar.")(fn)


def _standard(fn):
    """--out, --size, --quiet: what every import takes."""
    return _out(_size(_quiet(fn)))


def _keys(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [] if text == "none" else [k.strip() for k in text.split(",") if k.strip()]


@click.group(context_settings=CONTEXT_SETTINGS)
def main():
    """Import datasets from other tools (and export to LeRobot).

    \b
    Examples:
      clam-import videos ~/videos/kitchen --out data/kitchen-video --size 64 --fps 5
      clam-import lerobot ~/lerobot/my_so101 --out data/so101 --camera observation.images.front
      clam-import hdf5 ~/robomimic/lift/ph/image.hdf5 --out data/lift --image-key agentview_image
      clam-import rlds ~/tensorflow_datasets/bridge_dataset/1.0.0 --out data/bridge
      clam-import export-lerobot data/wx-reach --out ~/lerobot/wx-reach

    Every import writes a new directory, atomically: on any error (a one-line message naming the file,
    exit 2) or Ctrl-C nothing is left at --out.
    """


@main.command()
@click.argument("folder", type=click.Path())
@click.option("--fps", type=float, default=None, help="Resample every video to this rate (required for image folders). "
              "Default: the videos' own constant rate.")
@_standard
@handle_errors
def videos(folder, out, size, fps, quiet):
    """Every video (mp4, webm, avi, mkv, mov) or numbered-image folder in FOLDER -> one unlabelled episode.

    \b
    Example:
      clam-import videos ~/videos/kitchen --out data/kitchen-video --size 64 --fps 5
    """
    from clamkit.errors import UserError
    from clamkit.importers.videos import import_videos

    hw = parse_size(size)
    if hw is None:
        raise UserError("videos: --size must be a fixed size (every episode of a dataset has one frame shape)")
    click.echo(json.dumps(import_videos(folder, out, size=hw, fps=fps, show_progress=not quiet)))


@main.command()
@click.argument("path", type=click.Path())
@click.option("--camera", default=None, help="Video/image feature to store as 'image' (default: the first; 'none': no image).")
@click.option("--state", default=None, help="Comma-separated vector features concatenated into 'state' "
              "(default: observation.state when present; 'none').")
@click.option("--no-actions", is_flag=True, help="Drop the actions (import as unlabelled).")
@click.option("--semantics", default=None, help="Action semantics to record, e.g. ee_delta_xyz_rpy+gripper "
              "(default: lerobot:<robot_type>). Datasets trained together must agree.")
@_standard
@handle_errors
def lerobot(path, out, camera, state, no_actions, semantics, size, quiet):
    """A local LeRobotDataset v3 directory -> clamkit dataset (fps, episodes and actions kept).

    \b
    Example:
      clam-import lerobot ~/.cache/huggingface/lerobot/me/so101-pick --out data/so101 \\
          --camera observation.images.front --state observation.state
    """
    from clamkit.importers.lerobot import import_lerobot

    click.echo(json.dumps(import_lerobot(path, out, camera=camera, state=_keys(state), actions=not no_actions,
                                         size=parse_size(size), semantics=semantics, show_progress=not quiet)))


@main.command()
@click.argument("file", type=click.Path())
@click.option("--image-key", default=None, help="obs key of (T, H, W, 3) uint8 frames (default: the first *_image; 'none').")
@click.option("--state-keys", default=None, help="Comma-separated low-dim obs keys concatenated into 'state' "
              "(default: robot0_eef_pos,robot0_eef_quat,robot0_gripper_qpos when present; 'none').")
@click.option("--fps", type=float, default=None, help="Rate (default: env_args control_freq, else 20).")
@click.option("--filter", "filter_key", default=None, help="Only the demos of mask/<FILTER> (e.g. train).")
@click.option("--no-actions", is_flag=True, help="Drop the actions (import as unlabelled).")
@click.option("--semantics", default="robomimic", show_default=True, help="Action semantics to record.")
@_standard
@handle_errors
def hdf5(file, out, image_key, state_keys, fps, filter_key, no_actions, semantics, size, quiet):
    """A robomimic-layout HDF5 file (data/demo_N/obs/..., actions) -> clamkit dataset.

    \b
    Example:
      clam-import hdf5 lift/ph/image.hdf5 --out data/lift --image-key agentview_image --size 84
    """
    from clamkit.importers.hdf5 import import_hdf5

    click.echo(json.dumps(import_hdf5(file, out, image_key=image_key, state_keys=_keys(state_keys), fps=fps,
                                      filter_key=filter_key, actions=not no_actions, size=parse_size(size),
                                      semantics=semantics, show_progress=not quiet)))


@main.command()
@click.argument("src", type=click.Path())
@click.option("--image-key", default=None, help="Image feature (default: the first steps/observation/image*; 'none').")
@click.option("--state-key", default="auto", show_default=True, help="State feature ('auto': steps/observation/state; 'none').")
@click.option("--action-key", default="steps/action", show_default=True)
@click.option("--action-map", type=click.Choice(["auto", "bridge", "raw", "none"]), default="auto", show_default=True,
              help="bridge: BridgeData V2 -> WidowX ee_delta_xyz_rpy+gripper; raw: unmapped; none: unlabelled; "
                   "auto: bridge when the dataset is named *bridge*.")
@click.option("--fps", type=float, default=None, help="Rate (RLDS stores none; default 5 for bridge).")
@click.option("--split", default="train", show_default=True, help="Which shards: <name>-<split>.tfrecord-*.")
@_standard
@handle_errors
def rlds(src, out, image_key, state_key, action_key, action_map, fps, split, size, quiet):
    """RLDS / Open X-Embodiment TFRecord episodes (a TFDS dataset directory or one shard) -> clamkit dataset.

    \b
    Example:
      clam-import rlds ~/tensorflow_datasets/bridge_dataset/1.0.0 --out data/bridge --size 64
    """
    from clamkit.importers.rlds import import_rlds

    click.echo(json.dumps(import_rlds(src, out, image_key=image_key, state_key=state_key, action_key=action_key,
                                      action_map=action_map, fps=fps, split=split, size=parse_size(size),
                                      show_progress=not quiet)))


@main.command("export-lerobot")
@click.argument("dataset", type=click.Path())
@_out
@click.option("--episodes", type=click.Choice(["all", "labelled", "unlabelled"]), default="all", show_default=True)
@click.option("--codec", default="libx264", show_default=True, help="Video encoder (libx264, libsvtav1, ...).")
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True, help="Video quality (lower: closer to the frames).")
@_quiet
@handle_errors
def export_lerobot_cmd(dataset, out, episodes, codec, crf, quiet):
    """A clamkit dataset (clam-record, clam-run recordings) -> LeRobotDataset v3 directory.

    \b
    Example:
      clam-import export-lerobot data/wx-reach --out ~/lerobot/wx-reach
    """
    from clamkit.importers.lerobot import export_lerobot

    click.echo(json.dumps(export_lerobot(dataset, out, episodes=episodes, codec=codec, crf=crf, show_progress=not quiet)))


if __name__ == "__main__":
    main()
