"""The run planner: which tasks become ready as others finish, for every graph shape."""

from graph_flows import write_flow
from mflow.graph import load_graph
from mflow.runtime.planner import Frame, RunPlanner, TaskOutcome

NESTED = """
@step
def start(self):
    self.next(self.a, self.b)

@step
def a(self):
    self.next(self.each, foreach='items')

@step
def each(self):
    self.next(self.inner, foreach='parts')

@step
def inner(self):
    self.next(self.inner_join)

@step
def inner_join(self, inputs):
    self.next(self.each_join)

@step
def each_join(self, inputs):
    self.next(self.join)

@step
def b(self):
    self.next({'x': self.c, 'y': self.join_prep}, condition='mode')

@step
def c(self):
    self.next({'again': self.c, 'done': self.join_prep}, condition='state')

@step
def join_prep(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""


def planner(tmp_path):
    graph = load_graph(str(write_flow(tmp_path, NESTED)))
    assert graph.problems == []
    return RunPlanner(graph)


def finish(plan, spec, *next_steps, kind="linear", splits=None):
    return plan.finished(spec.task_id, TaskOutcome(tuple(next_steps), kind, splits))


def by_step(specs):
    return sorted((s.step, s.split_index) for s in specs)


def test_every_shape_through_to_end(tmp_path):
    plan = planner(tmp_path)
    (start,) = plan.start()
    assert start.inputs == ("_parameters/0",) and start.context == ()
    a, b = finish(plan, start, "a", "b", kind="split")
    assert (a.step, b.step) == ("a", "b")
    assert a.context == (Frame("start", start.task_id, "a"),)
    eaches = finish(plan, a, "each", kind="foreach", splits=2)
    assert by_step(eaches) == [("each", 0), ("each", 1)]
    assert all(e.inputs == ("a/%s" % a.task_id,) for e in eaches)
    # Switch: b picks c; c loops once, then goes on.
    (c,) = finish(plan, b, "c", kind="switch")
    (c2,) = finish(plan, c, "c", kind="switch")
    assert c2.inputs == ("c/%s" % c.task_id,) and c2.context == c.context
    (prep,) = finish(plan, c2, "join_prep", kind="switch")
    assert finish(plan, prep, "join") == []  # waits for branch a
    # Nested foreach: each item splits in 3, then both levels join in item order.
    joins = []
    for each in eaches:
        inners = finish(plan, each, "inner", kind="foreach", splits=3)
        assert [i.split_index for i in inners] == [0, 1, 2]
        for inner in reversed(inners):  # finish out of order
            joins.extend(finish(plan, inner, "inner_join"))
    assert [j.step for j in joins] == ["inner_join", "inner_join"]
    first_inners = [t for t in plan.tasks.values() if t.step == "inner" and t.context[-2].branch == 0]
    assert joins[0].inputs == tuple("inner/%s" % t.task_id for t in sorted(first_inners, key=lambda t: t.split_index))
    each_join = []
    for join in joins:
        each_join.extend(finish(plan, join, "each_join"))
    (each_join,) = each_join
    assert each_join.inputs == tuple("inner_join/%s" % j.task_id for j in joins)
    assert each_join.context == a.context
    (join,) = finish(plan, each_join, "join")
    assert join.inputs == ("each_join/%s" % each_join.task_id, "join_prep/%s" % prep.task_id)
    assert join.context == ()
    (end,) = finish(plan, join, "end")
    assert finish(plan, end, kind=None) == []
    assert plan.unfinished == set()


def test_task_ids_are_unique_and_count_up(tmp_path):
    plan = planner(tmp_path)
    (start,) = plan.start()
    specs = finish(plan, start, "a", "b", kind="split")
    specs += finish(plan, specs[0], "each", kind="foreach", splits=5)
    ids = [int(s.task_id) for s in [start] + specs]
    assert ids == list(range(1, len(ids) + 1))


def test_a_foreach_join_waits_for_every_item(tmp_path):
    plan = planner(tmp_path)
    (start,) = plan.start()
    a, _ = finish(plan, start, "a", "b", kind="split")
    (each,) = finish(plan, a, "each", kind="foreach", splits=1)
    inners = finish(plan, each, "inner", kind="foreach", splits=4)
    for inner in inners[:3]:
        assert finish(plan, inner, "inner_join") == []
    assert plan.waiting_joins() == [("inner_join", 3)]
    assert [s.step for s in finish(plan, inners[3], "inner_join")] == ["inner_join"]
