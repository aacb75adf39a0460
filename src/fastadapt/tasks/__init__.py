"""What is learned: the tasks of the meta-trainer (:class:`fastadapt.meta.task.Task`) that more than one
experiment uses, with their configs and the files they leave (inverse dynamics: its task, its config and
the trained loss file)."""
