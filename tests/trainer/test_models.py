"""Model shapes (state and pixel families) and the DeployPolicy contract the exporter relies on."""

import numpy as np
import pytest
import torch

from clamkit.errors import ConfigError
from clamkit.trainer import conv, mlp
from clamkit.trainer.deploy import DeployPolicy

torch.set_num_threads(1)


def test_state_models_shapes():
    B, D, Z, A = 5, 39, 8, 4
    w = torch.randn(B, 3, D)
    assert mlp.IDM((D,), Z, [32, 32])(w).shape == (B, Z)
    torch.manual_seed(0)
    raw = mlp.IDM((D,), A, [32])
    torch.manual_seed(0)
    squashed = mlp.IDM((D,), A, [32], squash=True)
    a = squashed(w)
    assert a.shape == (B, A)
    torch.testing.assert_close(a, torch.tanh(raw(w)))  # squash=True is tanh on the same network, nothing else
    assert mlp.FDM((D,), Z, [32])(w[:, :2], torch.randn(B, Z)).shape == (B, D)
    assert mlp.Policy((D,), Z, [32])(w[:, 1]).shape == (B, Z)
    dec = mlp.ActionDecoder(Z, A, [16])
    z = torch.randn(B, Z)
    assert dec(z).shape == (B, A) and not torch.allclose(dec(z), dec(-z))  # the action depends on the latent


@pytest.mark.parametrize("S", [64, 84])
def test_pixel_models_shapes(S):
    B, Z = 2, 8
    w = torch.rand(B, 3, 3, S, S)
    kw = {"hidden": [32], "channels": [8, 16, 16]}
    assert conv.IDM((3, S, S), Z, **kw)(w).shape == (B, Z)
    z = torch.randn(B, Z, requires_grad=True)
    out = conv.FDM((3, S, S), Z, **kw)(w[:, :2], z)
    assert out.shape == (B, 3, S, S)
    (g,) = torch.autograd.grad(out.sum(), z)
    assert g.abs().sum() > 0  # the prediction flows back into the latent (a detached z would train nothing)
    assert conv.Policy((3, S, S), Z, **kw)(w[:, 1]).shape == (B, Z)


def test_fdm_uses_the_latent_at_input_and_bottleneck():
    f = conv.FDM((3, 64, 64), 4, hidden=[8], channels=[8, 8])
    ctx = torch.rand(1, 2, 3, 64, 64)
    assert not torch.allclose(f(ctx, torch.zeros(1, 4)), f(ctx, torch.ones(1, 4)))
    assert f.stem[0].in_channels == 6 + 4 and f.mid[0].in_channels == 8 + 4


def test_fdm_at_a_lower_resolution_predicts_the_pooled_next_frame():
    """model.fdm_size: context and target average-pooled to size x size; the error compares like with like."""
    f = conv.FDM((3, 64, 64), 4, hidden=[8], channels=[8, 8], size=32)
    ctx, nxt, z = torch.rand(2, 2, 3, 64, 64), torch.rand(2, 3, 64, 64), torch.randn(2, 4)
    pred = f(ctx, z)
    assert pred.shape == (2, 3, 32, 32)
    pooled = torch.nn.functional.avg_pool2d(nxt, 2)
    assert torch.allclose(f.error(ctx, z, nxt), (pred - pooled).pow(2).flatten(1).mean(1))
    # an image identical up to detail finer than the FDM's grid has the same error
    detail = nxt + 0.1 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32)
    assert torch.allclose(f.error(ctx, z, nxt), f.error(ctx, z, detail), atol=1e-6)
    with pytest.raises(ConfigError, match="fdm_size"):
        conv.FDM((3, 64, 64), 4, hidden=[8], channels=[8, 8], size=24)


ARCHS = {
    "state-latent": dict(key="state", in_shape=[39], image_size=0, net={"hidden": [32, 32]}, policy_out=8,
                         squash=False, decoder={"la_dim": 8, "hidden": [16]}, action_dim=4),
    "image-bc-resize": dict(key="image", in_shape=[84, 84, 3], image_size=64, net={"hidden": [32], "channels": [8, 16]},
                            policy_out=4, squash=True, decoder=None, action_dim=4),
}


def _input(arch, B):
    if arch["key"] == "state":
        return torch.randn(B, *arch["in_shape"]) * 3
    return torch.randint(0, 256, (B, *arch["in_shape"]), dtype=torch.uint8)


@pytest.mark.parametrize("name", ARCHS)
def test_deploy_policy_contract(name):
    arch = ARCHS[name]
    p = DeployPolicy(arch).eval()
    with torch.no_grad():
        p.low.copy_(torch.tensor([-1.0, -2.0, 0.0, 0.0]))
        p.high.copy_(torch.tensor([1.0, 2.0, 1.0, 0.5]))
    assert p.input_names == [arch["key"]]
    x = _input(arch, 7)
    a = p(x)
    assert a.shape == (7, 4) and a.dtype == torch.float32
    # robot units: the normalised action mapped onto [low, high] per dimension (-1 -> low, +1 -> high)
    torch.testing.assert_close(p.unnormalize(-torch.ones(4)), p.low)
    torch.testing.assert_close(p.unnormalize(torch.ones(4)), p.high)
    torch.testing.assert_close(a, p.unnormalize(p.normalized_action(p.prep(x))))


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("name", ARCHS)
def test_deploy_policy_exports_to_onnx_with_dynamic_batch(tmp_path, name, dynamo):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    arch = ARCHS[name]
    p = DeployPolicy(arch).eval()
    x = _input(arch, 2)
    path = tmp_path / "p.onnx"
    kw = ({"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamo
          else {"dynamic_axes": {arch["key"]: {0: "batch"}, "action": {0: "batch"}}})
    torch.onnx.export(p, (x,), str(path), input_names=p.input_names, output_names=["action"], dynamo=dynamo, **kw)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for B in (1, 5):
        xb = _input(arch, B)
        got = sess.run(None, {sess.get_inputs()[0].name: xb.numpy()})[0]
        np.testing.assert_allclose(got, p(xb).detach().numpy(), atol=1e-5)
