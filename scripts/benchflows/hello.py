"""Benchmark: the smallest flow (3 steps)."""
from LIBRARY import FlowSpec, step


class HelloBenchFlow(FlowSpec):
    @step
    def start(self):
        self.greeting = "hi"
        self.next(self.hello)

    @step
    def hello(self):
        print(self.greeting)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HelloBenchFlow()
