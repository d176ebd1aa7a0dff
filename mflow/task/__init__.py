"""One attempt of one task in this process: the flow loaded, its inputs read, the step run,
its artifacts, logs and records written (what mflow-task runs)."""
