"""Parts of the value-based learner (QMIX, VDN, IQL, DQN): targets, mixers, nets, replay."""
