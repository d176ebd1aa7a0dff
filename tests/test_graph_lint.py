"""One test per graph rule: a small bad flow, the exact FILE:LINE and message from --check."""

import pytest

from graph_flows import LINEAR, line_of, write_flow
from mflow.cli.graph import cli as graph_cli


def check(cli, path):
    result = cli(graph_cli, ["--check", path])
    return result


def errors(cli, path):
    result = check(cli, path)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert result.code == (1 if lines else 0), result
    return lines


def err(path, needle, message, nth=1):
    return "%s:%d: error: %s" % (path, line_of(path, needle, nth), message)


def test_clean_flow_prints_nothing_and_exits_0(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR)
    result = check(cli, path)
    assert (result.code, result.stdout, result.stderr) == (0, "", "")


def test_missing_start(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("def start", "def begin"))
    assert err(path, "class TestFlow", "flow TestFlow has no start step; add a @step named start") in errors(cli, path)


def test_missing_end(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.finish)

        @step
        def finish(self):
            pass
        """,
    )
    lines = errors(cli, path)
    assert err(path, "class TestFlow", "flow TestFlow has no end step; add a @step named end") in lines
    assert err(path, "def finish", "step finish has no self.next() transition; add one as its last statement") in lines


def test_step_defined_twice(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR + "\n@step\ndef start(self):\n    self.next(self.end)\n")
    first, second = line_of(path, "def start"), line_of(path, "def start", 2)
    assert (
        "%s:%d: error: step start is defined twice (lines %d and %d); rename or remove one" % (path, second, first, second)
    ) in errors(cli, path)


def test_reserved_step_name(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("middle", "name"))
    assert errors(cli, path) == [err(path, "def name", "step name name is reserved by FlowSpec; rename the step")]


@pytest.mark.parametrize(
    "name, message",
    [
        ("Middle", "step name Middle is invalid; use lowercase letters, digits and _"),
        ("_middle", "step name _middle starts with _; step names may not"),
    ],
)
def test_invalid_step_names(cli, tmp_path, name, message):
    path = write_flow(tmp_path, LINEAR.replace("middle", name))
    assert errors(cli, path) == [err(path, "def " + name, message)]


def test_too_many_arguments(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("def middle(self)", "def middle(self, inputs, more)"))
    assert err(path, "def middle", "step middle takes 3 arguments; a step takes only self, a join (self, inputs)") in errors(cli, path)


def test_join_without_split(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("def middle(self)", "def middle(self, inputs)"))
    assert errors(cli, path) == [
        err(path, "def middle", "step middle is a join (it takes inputs) but no split leads to it; remove inputs or add a split")
    ]


def test_missing_transition(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("    self.next(self.end)", "    pass"))
    lines = errors(cli, path)
    assert err(path, "def middle", "step middle has no self.next() transition; add one as its last statement") in lines
    assert err(path, "def end", "step end cannot be reached from start; connect it or remove it") in lines


def test_next_not_last(cli, tmp_path):
    path = write_flow(
        tmp_path,
        LINEAR.replace("    self.next(self.end)", "    if True:\n        self.next(self.end)"),
    )
    lines = errors(cli, path)
    assert err(path, "self.next(self.end)", "self.next() must be the last statement of step middle, outside any if, for, with or try") in lines


def test_next_called_twice(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("    self.next(self.end)", "    self.next(self.end)\n    self.next(self.end)"))
    assert errors(cli, path) == [
        err(path, "self.next(self.end)", "step middle calls self.next() more than once; call it once, last")
    ]


@pytest.mark.parametrize(
    "call, message",
    [
        ("self.next()", "it names no step; write e.g. self.next(self.end)"),
        ("self.next('end')", "'end' is not a step; name steps as self.<step>"),
        ("self.next(self.end, self.end)", "step end is named twice"),
        ("self.next(self.end, foreach=items)", "foreach= must name an artifact as a string, e.g. foreach='items'"),
        ("self.next(self.end, self.start, foreach='items')", "a foreach goes to exactly one step, not 2"),
        ("self.next(self.end, condition='x')", "condition= goes with a dict of cases, e.g. self.next({'a': self.a, 'b': self.b}, condition='var')"),
        ("self.next(self.end, num_parallel=4)", "unknown keyword num_parallel; self.next() takes steps, foreach= or condition="),
        ("self.next({'a': self.end}, condition='x')", "a switch needs at least two cases, not 1"),
        ("self.next({'a': self.end, 'b': self.start})", "a switch needs condition='<artifact>' naming the value that picks the case"),
        ("self.next({'a': self.end, 'b': self.start}, condition=x)", "condition= must name an artifact as a string, e.g. condition='mode'"),
        ("self.next({'a': self.end, 'b': 'start'}, condition='x')", "switch case 'b' does not name a step; write self.<step>"),
        ("self.next({x: self.end, 'b': self.start}, condition='x')", "switch case keys must be literal strings"),
        ("self.next({'a': self.end, 'b': self.start}, condition='x', foreach='y')", "a switch cannot also be a foreach"),
    ],
)
def test_invalid_next_forms(cli, tmp_path, call, message):
    path = write_flow(tmp_path, LINEAR.replace("self.next(self.end)", call))
    lines = errors(cli, path)
    assert err(path, call, "invalid self.next() in step middle: " + message) in lines


def test_unknown_target_suggests_a_name(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("self.next(self.end)", "self.next(self.ends)"))
    lines = errors(cli, path)
    assert err(path, "self.next(self.ends)", "step middle goes to unknown step ends; did you mean end?") in lines


def test_unknown_target_without_suggestion(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("self.next(self.end)", "self.next(self.zzz)"))
    assert err(path, "self.next(self.zzz)", "step middle goes to unknown step zzz; define it or fix the name") in errors(cli, path)


def test_transition_to_start(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("self.next(self.end)", "self.next(self.start)"))
    lines = errors(cli, path)
    assert err(path, "self.next(self.start)", "step middle goes to start; nothing may go to start") in lines


def test_cycle(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.b)

        @step
        def b(self):
            self.next(self.a)

        @step
        def end(self):
            pass
        """,
    )
    lines = errors(cli, path)
    assert err(path, "self.next(self.a)", "steps a -> b -> a form a cycle; only a switch may loop, and only to its own step", nth=2) in lines
    assert err(path, "def end", "step end cannot be reached from start; connect it or remove it") in lines


def test_linear_self_loop(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("self.next(self.end)", "self.next(self.middle)"))
    lines = errors(cli, path)
    assert err(path, "self.next(self.middle)", "step middle goes to itself; only a switch may loop to its own step", nth=2) in lines


def test_switch_self_loop_is_allowed(cli, tmp_path):
    path = write_flow(
        tmp_path,
        LINEAR.replace("self.next(self.end)", "self.next({'again': self.middle, 'done': self.end}, condition='state')"),
    )
    assert errors(cli, path) == []


def test_switch_loop_to_an_earlier_step_is_a_cycle(cli, tmp_path):
    path = write_flow(
        tmp_path,
        LINEAR.replace("self.next(self.end)", "self.next({'again': self.start, 'done': self.end}, condition='state')"),
    )
    line = "self.next({'again': self.start"
    assert err(path, line, "step middle goes to start; nothing may go to start") in errors(cli, path)


def test_unreachable_step(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR + "\n@step\ndef lonely(self):\n    self.next(self.end)\n")
    assert errors(cli, path) == [err(path, "def lonely", "step lonely cannot be reached from start; connect it or remove it")]


SPLIT = """
@step
def start(self):
    self.next(self.a, self.b)

@step
def a(self):
    self.next(self.join)

@step
def b(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""


def test_split_and_join_are_clean(cli, tmp_path):
    assert errors(cli, write_flow(tmp_path, SPLIT)) == []


def test_split_reaching_end_unjoined(cli, tmp_path):
    path = write_flow(tmp_path, SPLIT.replace("def join(self, inputs)", "def join(self)"))
    lines = errors(cli, path)
    assert err(path, "def join", "branches a, b of split start meet at step join, which is not a join; declare it as def join(self, inputs)") in lines
    assert err(path, "def end", "step end is reached inside the split at start; add a join step to close it before end") in lines


def test_branch_skipping_the_join(cli, tmp_path):
    path = write_flow(tmp_path, SPLIT.replace("def b(self):\n    self.next(self.join)", "def b(self):\n    self.next(self.end)"))
    lines = errors(cli, path)
    assert err(path, "def join", "join join does not receive branch b of split start; every branch must reach the join") in lines


def test_join_mixing_two_splits(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.a1, self.a2)

        @step
        def a1(self):
            self.next(self.join)

        @step
        def a2(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    lines = errors(cli, path)
    assert err(path, "def join", "join join takes branches of different splits (a, start); give each split its own join") in lines


def test_nested_splits_balance(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.a1, self.a2)

        @step
        def a1(self):
            self.items = [1, 2]
            self.next(self.each, foreach='items')

        @step
        def each(self):
            self.next(self.each_join)

        @step
        def each_join(self, inputs):
            self.next(self.a_join)

        @step
        def a2(self):
            self.next(self.a_join)

        @step
        def a_join(self, inputs):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert errors(cli, path) == []


def test_foreach_straight_to_join(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.items = [1, 2]
            self.next(self.join, foreach='items')

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert errors(cli, path) == [
        err(path, "self.next(self.join", "foreach step start goes straight to join join; put at least one step between them")
    ]


def test_switch_branches_meet_without_join(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next({'x': self.a, 'y': self.b}, condition='mode')

        @step
        def a(self):
            self.next(self.end)

        @step
        def b(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert errors(cli, path) == []


def test_switch_branches_into_a_join_is_a_join_without_split(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next({'x': self.a, 'y': self.b}, condition='mode')

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert errors(cli, path) == [
        err(path, "def join", "step join is a join (it takes inputs) but no split leads to it; remove inputs or add a split")
    ]


def test_end_calls_next_and_is_a_join(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("def end(self):\n    pass", "def end(self, inputs):\n    self.next(self.middle)"))
    lines = errors(cli, path)
    assert err(path, "self.next(self.middle)", "step end calls self.next(); end is the last step and goes nowhere", nth=2) in lines
    assert err(path, "def end", "step end is a join (it takes inputs); end takes only self, add a join step before it") in lines


def test_decorator_rules(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        @retry(times=2)
        def a(self):
            self.next(self.b)

        @retry
        @retry(times=1)
        @timeout()
        @resources(4)
        @step
        def b(self):
            self.next(self.c)

        @retry(times=-1, minutes_between_retries=0)
        @catch(var='bad name')
        @environment(vars={'OK': '1', '2BAD': 'x'})
        @timeout(minutes=-5)
        @resources(memory=0, gpu=1.5)
        @step
        def c(self):
            self.next(self.d)

        @retry(tims=2)
        @step(name='x')
        def d(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert errors(cli, path) == [
        err(path, "@retry(times=2)", "@retry on step a is placed below @step; put it above @step"),
        err(path, "@retry(times=1)", "@retry is applied twice to step b; keep one"),
        err(path, "@timeout()", "@timeout on step b: needs a duration: give seconds=, minutes= or hours="),
        err(path, "@resources(4)", "@resources on step b takes keyword arguments only"),
        err(path, "@retry(times=-1", "@retry on step c: times must be a whole number of 0 or more, not -1"),
        err(path, "@catch(var=", "@catch on step c: var must name an artifact (a Python identifier not starting with _), not 'bad name'"),
        err(path, "@environment(", "@environment on step c: vars has an invalid variable name '2BAD'"),
        err(path, "@timeout(minutes=-5)", "@timeout on step c: minutes must be a number of 0 or more, not -5"),
        err(path, "@resources(memory=0", "@resources on step c: gpu must be a whole number of 0 or more, not 1.5"),
        err(path, "@resources(memory=0", "@resources on step c: memory must be a positive number, not 0"),
        err(path, "@retry(tims=2)", "@retry on step d: has no argument 'tims'; it takes backoff, jitter, minutes_between_retries, times"),
        err(path, "@step(name=", "@step on d takes no arguments; write @step"),
    ]


def test_nonliteral_decorator_arguments_are_not_judged(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("@step\ndef middle", "@retry(times=RETRIES)\n@step\ndef middle"))
    assert errors(cli, path) == []


def test_users_own_decorators_are_recorded_not_judged(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("@step\ndef middle", "@my_decorator(1, 2)\n@step\ndef middle"))
    assert errors(cli, path) == []


def test_catch_on_foreach_and_switch(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @catch(var='failure')
        @step
        def start(self):
            self.items = [1]
            self.next(self.each, foreach='items')

        @step
        def each(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.pick)

        @catch
        @step
        def pick(self):
            self.next({'a': self.a, 'b': self.end}, condition='mode')

        @step
        def a(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert errors(cli, path) == [
        err(path, "@catch(var=", "@catch on foreach step start is not allowed; a caught failure leaves no items to follow"),
        err(path, "@catch", "@catch on switch step pick is not allowed; a caught failure leaves no case to follow", nth=2),
    ]


def test_parameter_rules(cli, tmp_path):
    params = """
alpha = Parameter('alpha', default=1)
again = Parameter('alpha', default=2)
tag = Parameter('tag', default='x')
count = Parameter('count', type=int, default='three')
bad = Parameter('no spaces allowed')
unnamed = Parameter(default=3)
middle = Parameter('middle-param', default='m')
"""
    path = write_flow(tmp_path, params + LINEAR)
    assert errors(cli, path) == [
        err(path, "again = ", "parameter 'alpha' is declared twice (lines %d and %d)" % (line_of(path, "alpha = "), line_of(path, "again = "))),
        err(path, "tag = ", "parameter name 'tag' is reserved, as in Metaflow; rename it"),
        err(path, "count = ", "parameter 'count': default 'three' is not of type int"),
        err(path, "bad = ", "parameter name 'no spaces allowed' is invalid; use letters, digits, _ and -"),
        err(path, "unnamed = ", "Parameter unnamed has no name; give it one, e.g. Parameter('unnamed')"),
        err(path, "middle = ", "parameter middle has the same name as step middle; rename one"),
    ]


def test_every_problem_is_reported_in_line_order(cli, tmp_path):
    path = write_flow(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.nowhere)

        @step
        def Bad(self):
            self.next(self.end)

        @step
        def end(self):
            self.next(self.start)
        """,
    )
    lines = errors(cli, path)
    numbers = [int(line.split(":")[1]) for line in lines]
    assert numbers == sorted(numbers)
    assert len(lines) == 5, lines


def test_parameter_names_clash_as_options_do(cli, tmp_path):
    params = """
learning_rate = Parameter('learning_rate', default=1)
lr = Parameter('Learning-Rate', default=2)
cfg = Parameter('cfg', type=JSONType, default='{not json')
other = Parameter('middle', default='m')
"""
    path = write_flow(tmp_path, params + LINEAR)
    first = line_of(path, "learning_rate = ")
    assert errors(cli, path) == [
        err(path, "lr = ", "parameter 'Learning-Rate' clashes with 'learning_rate' (case and - versus _ do not count) (lines %d and %d)" % (first, first + 1)),
        err(path, "cfg = ", "parameter 'cfg': default '{not json' is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        err(path, "other = ", "parameter other has the same name as step middle; rename one"),
    ]
