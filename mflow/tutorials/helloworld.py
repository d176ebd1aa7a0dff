"""A flow where mflow says hi: the smallest flow there is."""

from mflow import FlowSpec, step


class HelloFlow(FlowSpec):
    """A flow where mflow prints 'Hi'.

    Check it with `mflow check helloworld.py` (or `python helloworld.py check`).
    """

    @step
    def start(self):
        """This is the 'start' step. All flows must have a step named 'start'."""
        print("HelloFlow is starting.")
        self.next(self.hello)

    @step
    def hello(self):
        """A step for mflow to introduce itself."""
        self.greeting = "Hi, I am mflow!"
        print(self.greeting)
        self.next(self.end)

    @step
    def end(self):
        """This is the 'end' step. All flows must have an 'end' step."""
        print("HelloFlow is all done.")


if __name__ == "__main__":
    HelloFlow()
