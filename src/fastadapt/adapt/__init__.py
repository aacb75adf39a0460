"""Online adaptation: the streaming runner, baselines and the control-loop Adapter."""
