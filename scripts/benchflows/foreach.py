"""Benchmark: a foreach of WIDTH tiny tasks and their join (WIDTH from the environment)."""
import os

from LIBRARY import FlowSpec, step


class ForeachBenchFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(int(os.environ.get("BENCH_WIDTH", "100"))))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if os.environ.get("BENCH_FAIL") == str(self.input):
            raise RuntimeError("failing item %d, for the resume benchmark" % self.input)
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print(self.total)


if __name__ == "__main__":
    ForeachBenchFlow()
