"""The parts every training run shares: devices, seeding, configs, checkpoints, logging."""
