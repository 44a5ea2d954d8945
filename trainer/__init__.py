"""clamkit.trainer: CLAM and its baselines in PyTorch (DESIGN §3). Read in this order:

    config.py   the TrainConfig dataclasses (every YAML key, documented)
    data.py     datasets -> frame stores, window ids, resumable samplers
    mlp.py      state models (IDM, FDM, action decoder, policy)
    conv.py     pixel models (CNN IDM, U-Net FDM, CNN policy)
    vq.py       the vector quantiser of the discrete baseline
    deploy.py   DeployPolicy (raw observation -> action, what clam-export exports), load_policy
    engine.py   seeding, DDP, logging, atomic checkpoints, exact resume, the stage loop
    common.py   what the algorithms share (regression stage, selection, probes)
    clam.py     CLAM;  bc.py  bc-play / bc-expert;  vpt.py  VPT;  vq.py  vq (LAPO-style; quantizer.py)
    train.py    train(cfg, unlabelled, labelled, out);  cli.py  clam-train
"""
