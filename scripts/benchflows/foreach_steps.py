"""The Python of scripts/benchflows/foreach.smk's jobs: foreach.py's steps, one function each."""
import json


def start(output, width):
    with open(output[0], "w") as handle:
        json.dump(list(range(width)), handle)


def work(input, output, index):
    with open(input[0]) as handle:
        item = json.load(handle)[index]
    with open(output[0], "w") as handle:
        json.dump(item * 2, handle)


def join(input, output):
    total = 0
    for path in input:
        with open(path) as handle:
            total += json.load(handle)
    with open(output[0], "w") as handle:
        json.dump(total, handle)


def end(input, output):
    with open(input[0]) as handle:
        total = json.load(handle)
    print(total)
    with open(output[0], "w") as handle:
        handle.write("%d\n" % total)


if "snakemake" in globals():  # run by a `script:` directive, in a process of its own
    job = snakemake  # noqa: F821 (defined by Snakemake's preamble)
    if job.rule == "start":
        start(job.output, int(job.config.get("width", 100)))
    elif job.rule == "work":
        work(job.input, job.output, int(job.wildcards.i))
    else:
        globals()[job.rule](job.input, job.output)
