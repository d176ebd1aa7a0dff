"""Benchmark: branch-heavy: a split of 4 branches, each splitting in 4 again, then joins."""
from LIBRARY import FlowSpec, step


class BranchBenchFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.a, self.b, self.c, self.d)

    @step
    def a(self):
        self.next(self.a1, self.a2, self.a3, self.a4)

    @step
    def a1(self):
        self.v = 1
        self.next(self.a_join)

    @step
    def a2(self):
        self.v = 2
        self.next(self.a_join)

    @step
    def a3(self):
        self.v = 3
        self.next(self.a_join)

    @step
    def a4(self):
        self.v = 4
        self.next(self.a_join)

    @step
    def a_join(self, inputs):
        self.v = sum(i.v for i in inputs)
        self.next(self.join)

    @step
    def b(self):
        self.v = 10
        self.next(self.join)

    @step
    def c(self):
        self.v = 100
        self.next(self.join)

    @step
    def d(self):
        self.v = 1000
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print(self.total)


if __name__ == "__main__":
    BranchBenchFlow()
