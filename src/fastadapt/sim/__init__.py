"""PyBullet robot simulation: the KUKA iiwa and the motions recorded on it."""
