"""The MPE scenarios, one class each, written against `marl.envs.mpe.scenario.Scenario`."""
