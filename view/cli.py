"""clam-view: see a dataset, a run's decoded latents, or rollouts (a Rerun recording, or a PNG contact sheet)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import click

from clamkit.cli import CONTEXT_SETTINGS, handle_errors


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("target", type=click.Path())
@click.option("--data", multiple=True, type=click.Path(), help="For a RUN: its --unlabelled datasets, in order "
              "(to show the decoded latent relabels next to the true actions, and the latent trajectory).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file: .rrd (Rerun) or .png (contact sheet) [default: TARGET-view.rrd, or .png without rerun-sdk].")
@click.option("--episodes", type=click.IntRange(1), default=6, show_default=True, help="Episodes to show.")
@click.option("--no-gif", is_flag=True, help="Contact sheet only, no GIF of the first episode's frames.")
@handle_errors
def main(target, data, out, episodes, no_gif):
    """Look at DATASET, RUN or ROLLOUTS: frames, actions, for a run the decoded latent relabels next to the
    true actions and the latent trajectory, for rollouts the success marks. Does my latent carry the action?

    \b
    Examples:
      clam-view data/wx-reach                                   # a dataset (or clam-run --record rollouts)
      clam-view runs/reach-clam --data data/reach-expert        # a run, with its unlabelled data
      rerun runs/reach-clam-view.rrd                            # open the recording
      clam-view runs/reach-clam --data data/reach-expert --out sheet.png   # a PNG contact sheet instead
    """
    from clamkit.view.render import write_rerun, write_sheet
    from clamkit.view.scene import load

    scene = load(target, list(data), episodes)
    has_rerun = importlib.util.find_spec("rerun") is not None
    if out is None:
        out = Path(str(Path(target).resolve()) + ("-view.rrd" if has_rerun else "-view.png"))
    out = Path(out)
    if out.suffix == ".rrd":
        shown = write_rerun(scene, out)
    elif out.suffix == ".png":
        shown = write_sheet(scene, out, gif=not no_gif)
    else:
        from clamkit.errors import UserError

        raise UserError(f"--out {out}: use a .rrd (Rerun) or .png (contact sheet) file name")
    click.echo(json.dumps({"out": str(out), "kind": scene.kind, "episodes": len(scene.tracks), "streams": len(shown),
                           "notes": scene.notes}))


if __name__ == "__main__":
    main()
