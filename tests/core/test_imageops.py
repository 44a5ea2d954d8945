"""clamkit.imageops: the one numpy resize and crop (camera drivers, the control loop, export's parity check)."""

import numpy as np

from clamkit.imageops import center_crop, resize_area, resize_nearest


def test_resize_area_averages_and_keeps_constants():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    same = resize_area(img, 4, 6)  # already that size: a copy (never a view of a camera's buffer)
    assert same is not img and (same == img).all()
    out = resize_area(img, 2, 3)  # integer factors: 2x2 block means
    np.testing.assert_array_equal(out, (img.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3)) + 0.5).astype(np.uint8))
    flat = np.full((480, 480, 3), 77, np.uint8)
    assert (resize_area(flat, 64, 64) == 77).all()  # 7.5x: box weights sum to one
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)
    small = resize_area(noise, 64, 64)
    assert small.shape == (64, 64, 3) and abs(small.mean() - noise.mean()) < 1.0
    assert resize_area(noise, 960, 1280).shape == (960, 1280, 3)  # upscaling works too


def test_resize_area_non_integer_factor_matches_a_box_average():
    """480 -> 64 rows is 7.5 input rows per output row: output row 0 is rows 0-6 plus half of row 7."""
    img = np.zeros((480, 64, 1), np.uint8)
    img[7] = 200  # only the half-covered row is bright
    out = resize_area(img, 64, 64)
    assert out[0, 0, 0] == round(200 * 0.5 / 7.5)  # 13: half a row of 200 over 7.5 rows
    assert out[1, 0, 0] == round(200 * 0.5 / 7.5)  # the other half of row 7 belongs to output row 1
    assert (out[2:] == 0).all()


def test_upscaling_repeats_pixels_where_they_cover_whole_outputs():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    up = resize_area(img, 4, 6)  # each input pixel covers exactly 2x2 outputs
    np.testing.assert_array_equal(up[::2, ::2], img)
    np.testing.assert_array_equal(up[1::2, 1::2], img)


def test_center_crop_keeps_the_middle():
    img = np.zeros((480, 640), np.uint8)
    assert center_crop(img, 64, 64).shape == (480, 480)
    assert center_crop(img, 90, 160).shape == (360, 640)
    img[:, 80:560] = 1
    assert (center_crop(img, 1, 1) == 1).all()


def test_resize_nearest_never_mixes_values():
    depth = np.where(np.arange(10)[None, :] < 5, 1.0, 2.0).astype(np.float32) * np.ones((8, 1), np.float32)  # (8, 10)
    out = resize_nearest(depth, 3, 4)
    assert out.shape == (3, 4) and set(np.unique(out)) <= {1.0, 2.0}
