# Benchmark: foreach.py as a Snakemake workflow: start writes the items, WIDTH work jobs each
# double one, join sums them and end prints the total; every job is one of foreach_steps.py's
# Python functions. Config: width=N (default 100); form=script (the default: each job runs
# foreach_steps.py as a process of its own, by the `script:` directive) or form=run (each job a
# `run:` block calling the same function; Snakemake runs such a job in a Snakemake process of its
# own, or in a thread of the main one with --force-use-threads).
import sys

sys.path.insert(0, workflow.basedir)
import foreach_steps

WIDTH = int(config.get("width", 100))
RUN = config.get("form", "script") == "run"


rule all:
    input: "end.txt"


if RUN:
    rule start:
        output: "items.json"
        run: foreach_steps.start(output, WIDTH)

    rule work:
        input: "items.json"
        output: "work/{i}.json"
        run: foreach_steps.work(input, output, int(wildcards.i))

    rule join:
        input: expand("work/{i}.json", i=range(WIDTH))
        output: "total.json"
        run: foreach_steps.join(input, output)

    rule end:
        input: "total.json"
        output: "end.txt"
        run: foreach_steps.end(input, output)

else:
    rule start:
        output: "items.json"
        script: "foreach_steps.py"

    rule work:
        input: "items.json"
        output: "work/{i}.json"
        script: "foreach_steps.py"

    rule join:
        input: expand("work/{i}.json", i=range(WIDTH))
        output: "total.json"
        script: "foreach_steps.py"

    rule end:
        input: "total.json"
        output: "end.txt"
        script: "foreach_steps.py"
