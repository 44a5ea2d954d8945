"""clam-view: look at a dataset, a training run or robot rollouts.

    scene.py   DATASET | RUN | ROLLOUTS -> a Scene: per-episode frames, actions, decoded latent relabels,
               latents, success marks, and a run's metric curves (numpy; torch only to decode a RUN)
    render.py  Scene -> a Rerun recording (.rrd, extra `viz`) or a PNG contact sheet (+ GIF of frames)
    cli.py     the `clam-view` command

Arrows: this package imports torch and clamkit.trainer only inside the function that reads a RUN's
checkpoint (scene._run_latents); viewing a dataset or rollouts needs numpy plus rerun or matplotlib.
"""
