"""Scene -> a Rerun recording, or a PNG contact sheet (+ a GIF of the frames) when rerun-sdk is absent.

Rerun entity paths (timeline "frame" per episode step, "step" for training curves):
    <episode>/camera                 the frames
    <episode>/action/<j>             true a_t
    <episode>/decoded/<j>            d(z_t), the decoded latent relabel, next to the true action
    <episode>/latent/<j>             z_t, the latent trajectory
    <episode>/success                a text mark on the last frame of a rollout
    metrics/<name>                   a run's metrics.jsonl curves (probe R², losses)
The contact sheet has one row per episode (frame strip, actions vs decoded, latent trajectory), a
metrics panel for a run, and lists its panels in the PNG's "clamkit:panels" text chunk.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clamkit.errors import require
from clamkit.view.scene import Scene

STRIP = 8  # frames shown per episode in the contact sheet


def streams(scene: Scene) -> list[str]:
    """The entity paths / panels a scene produces (what a recording or sheet should contain)."""
    out = []
    for t in scene.tracks:
        if t.frames is not None:
            out.append(f"{t.name}/camera")
        for name, arr in (("action", t.actions), ("decoded", t.decoded), ("latent", t.latents)):
            if arr is not None:
                out += [f"{t.name}/{name}/{j}" for j in range(arr.shape[1])]
        if t.success is not None:
            out.append(f"{t.name}/success")
    out += [f"metrics/{k}" for k in scene.curves]
    return out


def write_rerun(scene: Scene, path: Path) -> list[str]:
    rr = require("rerun", "viz")
    rec = rr.RecordingStream(f"clamkit-view:{scene.kind}")
    rec.save(str(path))
    for t in scene.tracks:
        T = t.length
        for i in range(T):
            rec.set_time("frame", sequence=i)
            if t.frames is not None:
                rec.log(f"{t.name}/camera", rr.Image(np.asarray(t.frames[i])))
            for name, arr in (("action", t.actions), ("decoded", t.decoded), ("latent", t.latents)):
                if arr is not None and i < len(arr) and np.isfinite(arr[i]).all():
                    for j, v in enumerate(np.asarray(arr[i], np.float64)):
                        rec.log(f"{t.name}/{name}/{j}", rr.Scalars(float(v)))
        if t.success is not None:
            rec.set_time("frame", sequence=T - 1)
            rec.log(f"{t.name}/success", rr.TextLog("success" if t.success else "failure", level="INFO" if t.success else "WARN"))
    for k, pts in scene.curves.items():
        for step, v in pts:
            rec.set_time("step", sequence=step)
            rec.log(f"metrics/{k}", rr.Scalars(v))
    rec.flush()
    rec.disconnect()
    return streams(scene)


def write_sheet(scene: Scene, path: Path, gif: bool = True) -> list[str]:
    """A PNG contact sheet; with gif, also PATH.gif of the first episode's frames. Returns the panel names."""
    require("matplotlib", "viz")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(scene.tracks) + (1 if scene.curves else 0)
    fig, axes = plt.subplots(max(rows, 1), 3, figsize=(15, 2.6 * max(rows, 1)), squeeze=False)
    panels = []
    for r, t in enumerate(scene.tracks):
        ax_f, ax_a, ax_z = axes[r]
        mark = "" if t.success is None else (" ✓ success" if t.success else " ✗ failure")
        if t.frames is not None:
            idx = np.linspace(0, len(t.frames) - 1, min(STRIP, len(t.frames))).round().astype(int)
            ax_f.imshow(np.concatenate([np.asarray(t.frames[i]) for i in idx], axis=1))
            panels.append(f"{t.name}/camera")
        ax_f.set_title(f"{t.name}{mark}", fontsize=8, color="green" if t.success else ("red" if t.success is False else "black"))
        if t.success is not None:
            panels.append(f"{t.name}/success")
        if t.frames is None and t.state is not None:  # a state-only dataset: its observations in the first panel
            ax_f.plot(np.asarray(t.state), lw=0.8)
            panels.append(f"{t.name}/state")
        else:
            ax_f.axis("off")
        x = np.arange(t.length)
        if t.actions is not None:
            for j in range(t.actions.shape[1]):
                ax_a.plot(x[:len(t.actions)], t.actions[:, j], color=f"C{j}", lw=1, label=f"a[{j}]" if r == 0 else None)
            panels.append(f"{t.name}/action")
        if t.decoded is not None:
            for j in range(t.decoded.shape[1]):
                ax_a.plot(x[:len(t.decoded)], t.decoded[:, j], color=f"C{j}", lw=1, ls="--")
            panels.append(f"{t.name}/decoded")
        ax_a.set_title("actions (solid) vs decoded latent relabels (dashed)" if t.decoded is not None else "actions", fontsize=8)
        if t.actions is None and t.decoded is None:
            ax_a.axis("off")
            ax_a.text(0.5, 0.5, "unlabelled: no actions", ha="center", va="center", fontsize=8)
        if t.latents is not None:
            z = t.latents[np.isfinite(t.latents).all(1)]
            if len(z) >= 2:
                zc = z - z.mean(0)
                _, _, vt = np.linalg.svd(zc, full_matrices=False)
                p = zc @ vt[:2].T  # (n, 2): the latent trajectory's two main directions
                ax_z.plot(p[:, 0], p[:, 1] if p.shape[1] > 1 else np.zeros(len(p)), "-o", ms=2, lw=0.8)
                ax_z.plot(p[0, 0], p[0, 1] if p.shape[1] > 1 else 0, "go", ms=5)
            ax_z.set_title("latent trajectory (2 principal directions, green = start)", fontsize=8)
            panels.append(f"{t.name}/latent")
        elif t.state is not None and t.frames is not None:
            ax_z.plot(x, np.asarray(t.state), lw=0.8)
            ax_z.set_title("state", fontsize=8)
            panels.append(f"{t.name}/state")
        else:
            ax_z.axis("off")
    if scene.curves:
        ax = axes[-1]
        probes = {k: v for k, v in scene.curves.items() if k.startswith("probe/")}
        losses = {k: v for k, v in scene.curves.items() if k.startswith("loss")}
        for a, group, title in ((ax[0], probes, "probes"), (ax[1], losses, "losses")):
            for k, pts in group.items():
                s, v = zip(*pts)
                a.plot(s, v, lw=1, label=k)
                panels.append(f"metrics/{k}")
            a.set_title(title, fontsize=8)
            if group:
                a.legend(fontsize=6)
        ax[2].axis("off")
        ax[2].text(0, 0.5, "\n".join(scene.notes), fontsize=8)
    fig.suptitle(f"{scene.kind}: {scene.source}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"clamkit:panels": json.dumps(panels), "clamkit:kind": scene.kind})
    plt.close(fig)
    if gif and scene.tracks and scene.tracks[0].frames is not None:
        from PIL import Image

        frames = scene.tracks[0].frames
        step = max(1, len(frames) // 200)
        imgs = [Image.fromarray(np.asarray(frames[i])) for i in range(0, len(frames), step)]
        imgs[0].save(path.with_suffix(".gif"), save_all=True, append_images=imgs[1:],
                     duration=int(1000 * step / scene.tracks[0].fps), loop=0)
    return panels
