"""Bring your own data: other tools' recordings -> clamkit datasets (and back to LeRobot).

    videos.py   a folder of video files / numbered-image folders -> unlabelled episodes (PyAV)
    lerobot.py  a local LeRobotDataset v3 directory <-> a clamkit dataset (pyarrow + PyAV)
    hdf5.py     robomimic-layout HDF5 (data/demo_N/obs/..., actions) -> episodes (h5py)
    rlds.py     RLDS / Open X-Embodiment TFRecord episodes (BridgeData V2) -> episodes, no TensorFlow
    common.py   what they share: atomic output, PyAV decoding + resize, sizes, progress
    cli.py      the `clam-import` command

Core code: numpy at module level only; each reader (av, pyarrow, h5py, tfrecord) is imported in the
function that needs it, and a missing one is `MissingDependency` naming the `import` extra. Every
importer streams (one episode, and for video one chunk of frames, in memory at a time), writes
through `DatasetWriter` into a hidden sibling directory that is renamed to --out only when the whole
import succeeded, and turns unreadable or inconsistent input into a DatasetError naming the file.
"""
