"""Reinforcement learning as a library (no experiment here; those are :mod:`fastadapt.experiments.rl`):
differentiable PointmassGoal and ReacherGoal in JAX (``envs``), gymnax's MountainCar with gradients
(``mountain_car``), goal policies, rollouts and a learned dynamics model (``rollout``), iLQR (``ilqr``),
gymnasium's MuJoCo goal tasks (``mujoco_goal``) and sbx PPO on them (``ppo``). The RL meta-losses are
:mod:`fastadapt.losses.policy`."""
