"""Model-based control: MBPO (a dynamics ensemble feeding SAC) and Dreamer (a policy learned
in the imagination of a recurrent world model)."""
