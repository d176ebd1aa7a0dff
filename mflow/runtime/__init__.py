"""Running whole flows: the planner, the driver that launches tasks (forked, spawned or
as jobs of a compute engine), and resume."""
