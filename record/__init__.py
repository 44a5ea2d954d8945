"""clamkit.record: the record stage (`clam-record`): scripted experts, play and noisy policies, and the
recorder that rolls any of them on any Robot into a clamkit dataset.

    policy.py      Policy (observation dict -> action), CallablePolicy
    episodes.py    record_episodes(robot, policy, writer, ...)
    play.py        SegmentPlay: the play segment machine MetaWorld and widowx-sim share
    noisy.py       NoisyExpert: an expert made worse on purpose (the unlabelled pool)
    metaworld.py, dmc.py, widowx_sim.py   each simulator's experts and play policy
    cli.py         clam-record

The environments themselves live in clamkit.robot; nothing there imports this package.
"""
