"""The flow-authoring API: @step and step decorators, Parameter, FlowSpec, next(), current.

Unhappy paths check the whole message, since each must name the step or parameter.
"""

import importlib.util
import os
import pickle
import subprocess
import sys
import types

import pytest

from mflow import (
    FlowSpec,
    IncludeFile,
    JSONType,
    Parameter,
    catch,
    current,
    environment,
    resources,
    retry,
    step,
    timeout,
)
from mflow.decospec import STEP_DECORATORS
from mflow.errors import FlowDefinitionError, ParameterError, TransitionError
from mflow.flow.current import Current, resolve_username
from mflow.flow.decorators import STEP_DECORATOR_CLASSES, StepDecorator, make_step_decorator
from mflow.flow.parameters import ParameterContext
from mflow.flow.spec import ForeachFrame, Inputs, Transition


def message(excinfo):
    return str(excinfo.value)


# --- @step -------------------------------------------------------------------------------------


def test_step_marks_the_function_itself():
    def train(self):
        pass

    assert step(train) is train
    assert train.is_step is True
    assert train.name == "train"
    assert train.decorators == []


def test_step_twice_names_the_step():
    def train(self):
        pass

    step(train)
    with pytest.raises(FlowDefinitionError) as excinfo:
        step(train)
    assert message(excinfo) == "@step is applied twice to step 'train'. Keep one @step."


def test_step_on_something_that_is_not_a_method():
    with pytest.raises(FlowDefinitionError) as excinfo:
        step(staticmethod(lambda: None))
    assert message(excinfo).startswith("@step is applied to staticmethod")
    assert message(excinfo).endswith("Put @step directly above the def of a step method.")


# --- step decorators ---------------------------------------------------------------------------


def test_bare_and_called_forms_give_defaults_merged_with_arguments():
    @retry
    @step
    def bare(self):
        pass

    @retry()
    @step
    def empty_call(self):
        pass

    @retry(times=5)
    @step
    def called(self):
        pass

    for func in (bare, empty_call):
        (deco,) = func.decorators
        assert deco.name == "retry"
        assert deco.attributes == {"times": 3, "minutes_between_retries": 2, "backoff": 1, "jitter": 0}
        assert deco.given == {}
        assert deco.step_name == func.__name__
    (deco,) = called.decorators
    assert deco.attributes == {"times": 5, "minutes_between_retries": 2, "backoff": 1, "jitter": 0}
    assert deco.given == {"times": 5}
    assert deco.step_name == "called"
    assert isinstance(deco, StepDecorator)
    assert repr(deco) == "@retry(times=5)"


def test_decorators_are_listed_top_to_bottom():
    @retry(times=1)
    @catch(var="error")
    @timeout(minutes=5)
    @resources(cpu=2)
    @environment(vars={"MODE": "fast"})
    @step
    def train(self):
        pass

    assert [d.name for d in train.decorators] == ["retry", "catch", "timeout", "resources", "environment"]
    assert train.decorators[2].attributes == {"seconds": 0, "minutes": 5, "hours": 0}
    assert train.decorators[4].attributes == {"vars": {"MODE": "fast"}}


def test_each_step_gets_its_own_copy_of_mutable_defaults():
    @environment
    @step
    def one(self):
        pass

    @environment
    @step
    def two(self):
        pass

    one.decorators[0].attributes["vars"]["X"] = "1"
    assert two.decorators[0].attributes == {"vars": {}}
    assert STEP_DECORATORS["environment"].defaults == {"vars": {}}


def test_decorator_below_step_names_the_step():
    with pytest.raises(FlowDefinitionError) as excinfo:

        @step
        @retry
        def train(self):
            pass

    assert message(excinfo) == (
        "@retry on step 'train' is placed below @step. Put @retry above @step, with @step directly above def."
    )


def test_decorator_without_step_fails_when_the_flow_class_is_defined():
    with pytest.raises(FlowDefinitionError) as excinfo:

        class NoStepFlow(FlowSpec):
            @timeout(seconds=5)
            def train(self):
                pass

    assert message(excinfo) == "@timeout on method 'train' has no @step under it. Put @step directly above def, below @timeout."


def test_same_decorator_twice_names_the_step():
    with pytest.raises(FlowDefinitionError) as excinfo:

        @retry
        @retry(times=1)
        @step
        def train(self):
            pass

    assert message(excinfo) == "@retry is applied twice to step 'train'. Keep one @retry."


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: timeout(), "@timeout on step 'train': needs a duration: give seconds=, minutes= or hours=."),
        (lambda: retry(times=-1), "@retry on step 'train': times must be a whole number of 0 or more, not -1."),
        (
            lambda: retry(tims=2),
            "@retry on step 'train': has no argument 'tims'; it takes backoff, jitter, minutes_between_retries, times.",
        ),
        (lambda: resources(cpu=0), "@resources on step 'train': cpu must be a positive number, not 0."),
        (
            lambda: catch(var="not valid"),
            "@catch on step 'train': var must name an artifact (a Python identifier not starting with _), "
            "not 'not valid'.",
        ),
        (lambda: environment(vars={"1A": "x"}), "@environment on step 'train': vars has an invalid variable name '1A'."),
    ],
)
def test_invalid_decorator_arguments_are_judged_by_decospec(make, expected):
    def train(self):
        pass

    step(train)
    with pytest.raises(FlowDefinitionError) as excinfo:
        make()(train)
    assert message(excinfo) == expected


def test_several_problems_are_reported_on_one_line():
    def train(self):
        pass

    with pytest.raises(FlowDefinitionError) as excinfo:
        retry(times=-1, minutes_between_retries=-2)(step(train))
    assert "\n" not in message(excinfo)
    assert "times must be" in message(excinfo) and "; minutes_between_retries must be" in message(excinfo)


def test_positional_arguments_are_refused_naming_the_step():
    with pytest.raises(FlowDefinitionError) as excinfo:

        @retry(2)
        @step
        def train(self):
            pass

    assert message(excinfo) == (
        "@retry on step 'train' has positional arguments (2). Name them: @retry(times=..., minutes_between_retries=..., backoff=..., jitter=...)."
    )


def test_decorator_on_a_class_is_refused():
    with pytest.raises(FlowDefinitionError) as excinfo:

        @catch
        class NotAStep:
            pass

    assert message(excinfo) == (
        "@catch is applied to type 'NotAStep', not to a step method. Put @catch above @step, with @step directly above def."
    )


def test_make_step_decorator_builds_from_the_shared_table():
    class TimeoutWithBudget(StepDecorator):
        name = "timeout"

    try:
        custom = make_step_decorator("timeout", TimeoutWithBudget)

        @custom(hours=1)
        @step
        def train(self):
            pass

        assert type(train.decorators[0]) is TimeoutWithBudget
        assert STEP_DECORATOR_CLASSES["timeout"] is TimeoutWithBudget
    finally:
        make_step_decorator("timeout")
    assert STEP_DECORATOR_CLASSES["timeout"].__name__ == "TimeoutDecorator"
    assert retry.__name__ == "retry" and retry.__doc__
    with pytest.raises(KeyError):
        make_step_decorator("no_such_decorator")


def test_a_flow_file_with_a_misplaced_decorator_fails_at_import(tmp_path):
    path = tmp_path / "broken_flow.py"
    path.write_text(
        "from mflow import FlowSpec, step, retry\n"
        "\n"
        "class BrokenFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "\n"
        "    @step\n"
        "    @retry(times=2)\n"
        "    def end(self):\n"
        "        pass\n"
    )
    spec = importlib.util.spec_from_file_location("broken_flow", path)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(FlowDefinitionError) as excinfo:
        spec.loader.exec_module(module)
    assert message(excinfo) == "@retry on step 'end' is placed below @step. Put @retry above @step, with @step directly above def."


# --- Parameter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "default, expected",
    [
        (True, bool),
        (3, int),
        (0.5, float),
        ("text", str),
        ({"a": 1}, JSONType),
        ([1, 2], JSONType),
        (None, str),
        (lambda ctx: 3, str),
    ],
)
def test_type_is_inferred_from_the_default(default, expected):
    assert Parameter("p", default=default).type is expected


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(type=float, default=2), 2.0),
        (dict(type=JSONType, default='{"lr": 0.1}'), {"lr": 0.1}),
        (dict(type=JSONType, default=[1, "a", None]), [1, "a", None]),
        (dict(type=str, default="x", separator=","), "x"),
        (dict(type=bool, default=False), False),
    ],
)
def test_literal_defaults_are_kept_as_the_type(kwargs, expected):
    param = Parameter("p", **kwargs)
    assert param.default == expected
    assert type(param.default) is type(expected)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            dict(type=int, default="3"),
            "Parameter 'p' has default '3', which is not a whole number. Give a default of a whole number such as 10.",
        ),
        (
            dict(type=int, default=True),
            "Parameter 'p' has default True, which is not a whole number. Give a default of a whole number such as 10.",
        ),
        (
            dict(type=str, default=5),
            "Parameter 'p' has default 5, which is not text. Give a default of any text.",
        ),
        (
            dict(type=bool, default=1),
            "Parameter 'p' has default 1, which is not true or false. Give a default of true, false, yes, no, 1 or 0.",
        ),
        (
            dict(type=JSONType, default="{oops"),
            "Parameter 'p' has default '{oops', which is not JSON. Give a default of JSON such as {\"a\": 1} or [1, 2].",
        ),
        (
            dict(type=JSONType, default={"a": object}),
            "Parameter 'p' has default {'a': <class 'object'>}, which is not JSON. "
            "Give a default of JSON such as {\"a\": 1} or [1, 2].",
        ),
        (dict(type=list), "Parameter 'p' has type <class 'list'>. Use type=str, int, float, bool or JSONType."),
        (
            dict(default=(1, 2)),
            "Parameter 'p' cannot infer its type from default (1, 2). Give type= (str, int, float, bool or JSONType).",
        ),
        (
            dict(type=int, separator=","),
            "Parameter 'p' has separator= but type int. A separator is allowed only for str parameters; "
            "drop it or use type=str.",
        ),
        (dict(separator=""), "Parameter 'p' separator= must be a non-empty string, not ''. Give e.g. separator=','."),
        (dict(required="yes"), "Parameter 'p' required= must be True or False, not 'yes'. Give a literal True or False."),
        (dict(help=3), "Parameter 'p' help= must be text, not 3. Give a string."),
        (
            dict(hidden=True),
            "Parameter 'p' has no argument hidden. It takes default, type, help, required, show_default and separator.",
        ),
    ],
)
def test_invalid_parameters_are_refused_naming_them(kwargs, expected):
    with pytest.raises(FlowDefinitionError) as excinfo:
        Parameter("p", **kwargs)
    assert message(excinfo) == expected


@pytest.mark.parametrize("name", ["", "1abc", "-x", "a b", "a.b", 3, None])
def test_invalid_parameter_names(name):
    with pytest.raises(FlowDefinitionError) as excinfo:
        Parameter(name)
    assert message(excinfo) == (
        "Parameter name %r is invalid. Use letters, digits, _ and -, starting with a letter or _." % (name,)
    )


METAFLOW_RESERVED = [
    "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file", "max-num-splits",
    "max-workers", "max-log-size", "user-namespace", "runner-attribute-file",
]


@pytest.mark.parametrize(
    "name", METAFLOW_RESERVED + [n.replace("-", "_") for n in METAFLOW_RESERVED if "-" in n] + ["Max_Workers", "TAG"]
)
def test_parameter_names_reserved_as_in_metaflow(name):
    with pytest.raises(FlowDefinitionError) as excinfo:
        Parameter(name)
    assert message(excinfo) == "Parameter name %r is reserved, as in Metaflow. Rename the parameter." % name


@pytest.mark.parametrize(
    "name", ["verbose", "quiet", "store", "flow", "run-id", "help", "environment", "log-format", "max-jobs", "traceback"]
)
def test_driver_option_names_are_parameter_names(name):
    # Metaflow reserves none of these; the flow's parameter wins after FLOW.py.
    assert Parameter(name).name == name


@pytest.mark.parametrize("name", ["alpha", "learning-rate", "_x", "X9"])
def test_valid_parameter_names(name):
    assert Parameter(name).name == name


def test_required_with_a_default_is_satisfied_by_the_default():
    assert Parameter("p", default=1, required=True).needs_value is False
    assert Parameter("p", required=True).needs_value is True
    assert Parameter("p").needs_value is False
    loose = Parameter("p", required=None, show_default=None)
    assert (loose.required, loose.show_default) == (False, True)


@pytest.mark.parametrize(
    "kwargs, text, expected",
    [
        (dict(type=int), " 42 ", 42),
        (dict(type=float), "1e-3", 0.001),
        (dict(type=str), " as is ", " as is "),
        (dict(type=JSONType), '{"a": [1, 2]}', {"a": [1, 2]}),
        (dict(separator=","), "a,b,,c", ["a", "b", "", "c"]),
        (dict(separator=","), "", []),
    ],
)
def test_convert_gives_the_typed_value(kwargs, text, expected):
    assert Parameter("p", **kwargs).convert(text) == expected


@pytest.mark.parametrize("text", ["true", "True", "YES", "y", "1", "on", "t"])
def test_convert_true_words(text):
    assert Parameter("flag", type=bool).convert(text) is True


@pytest.mark.parametrize("text", ["false", "FALSE", "no", "N", "0", "off", "f"])
def test_convert_false_words(text):
    assert Parameter("flag", type=bool).convert(text) is False


@pytest.mark.parametrize(
    "kwargs, text, expected",
    [
        (dict(type=int), "1.5", "parameter 'p' expects a whole number, not '1.5'. Give a whole number such as 10."),
        (dict(type=float), "fast", "parameter 'p' expects a number, not 'fast'. Give a number such as 0.5."),
        (dict(type=bool), "maybe", "parameter 'p' expects true or false, not 'maybe'. Give true, false, yes, no, 1 or 0."),
        (
            dict(type=JSONType),
            "{a",
            "parameter 'p' expects JSON, not '{a' (Expecting property name enclosed in double quotes: "
            'line 1 column 2 (char 1)). Give JSON such as {"a": 1} or [1, 2].',
        ),
    ],
)
def test_convert_refuses_bad_text_naming_the_parameter(kwargs, text, expected):
    with pytest.raises(ParameterError) as excinfo:
        Parameter("p", **kwargs).convert(text)
    assert message(excinfo) == expected


def test_convert_takes_text_only():
    with pytest.raises(TypeError):
        Parameter("p", type=int).convert(3)


def test_deferred_default_is_called_with_a_context():
    seen = []

    def default(ctx):
        seen.append(ctx)
        return ctx.flow_name + "-x"

    param = Parameter("p", default=default)
    assert param.is_deferred
    context = ParameterContext("MyFlow", "ann", None, None, "local")
    assert param.resolve_default(context) == "MyFlow-x"
    assert seen[0].parameter_name == "p" and seen[0].user_name == "ann"


def test_deferred_default_without_a_context_still_names_the_parameter():
    assert Parameter("p", default=lambda ctx: ctx.parameter_name).resolve_default() == "p"


def test_deferred_default_failures_name_the_parameter():
    def broken(ctx):
        raise RuntimeError("no database")

    with pytest.raises(ParameterError) as excinfo:
        Parameter("p", default=broken).resolve_default()
    assert message(excinfo) == (
        "the default function of Parameter 'p' failed: RuntimeError: no database. Fix the function or give a value for p."
    )
    with pytest.raises(ParameterError) as excinfo:
        Parameter("n", type=int, default=lambda ctx: "ten").resolve_default()
    assert message(excinfo) == (
        "Parameter 'n' has default 'ten', which is not a whole number. Give a default of a whole number such as 10."
    )


def test_resolve_default_splits_with_the_separator():
    assert Parameter("p", default="a:b", separator=":").resolve_default() == ["a", "b"]
    assert Parameter("p", default=1.5).resolve_default() == 1.5
    assert Parameter("p").resolve_default() is None


# --- IncludeFile -------------------------------------------------------------------------------


def test_include_file_reads_text_or_bytes(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("a,b\n1,é\n".encode("utf-8"))
    assert IncludeFile("data").convert(str(path)) == "a,b\n1,é\n"
    assert IncludeFile("data", is_text=False).convert(str(path)) == "a,b\n1,é\n".encode("utf-8")
    assert IncludeFile("data", default=str(path)).resolve_default() == "a,b\n1,é\n"
    assert IncludeFile("data").resolve_default() is None


def test_include_file_errors_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError) as excinfo:
        IncludeFile("data").convert(str(tmp_path / "missing.csv"))
    assert message(excinfo) == (
        "IncludeFile 'data' cannot read %r: No such file or directory. Give the path of a readable file."
        % str(tmp_path / "missing.csv")
    )
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 au lait")
    with pytest.raises(ParameterError) as excinfo:
        IncludeFile("data").convert(str(latin))
    assert message(excinfo) == (
        "IncludeFile 'data': %r is not utf-8 text (invalid continuation byte). "
        "Give encoding= to match the file, or is_text=False to read bytes." % str(latin)
    )
    assert IncludeFile("data", encoding="latin-1").convert(str(latin)) == "café au lait"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            dict(encoding="no-such-codec"),
            "IncludeFile 'data' has unknown encoding 'no-such-codec'. Use an encoding Python knows, such as 'utf-8'.",
        ),
        (
            dict(is_text="yes"),
            "IncludeFile 'data' is_text= must be True or False, not 'yes'. Give a literal True or False.",
        ),
        (
            dict(separator=","),
            "IncludeFile 'data' has no argument separator. It takes required, is_text, encoding, help and default.",
        ),
        (dict(default=3), "IncludeFile 'data' has default 3, which is not text. Give a default of any text."),
    ],
)
def test_invalid_include_files(kwargs, expected):
    with pytest.raises(FlowDefinitionError) as excinfo:
        IncludeFile("data", **kwargs)
    assert message(excinfo) == expected


# --- FlowSpec: the class -----------------------------------------------------------------------


class TrainFlow(FlowSpec):
    """A flow for the instance tests."""

    alpha = Parameter("alpha", default=0.5)
    config = Parameter("config", type=JSONType, default='{"depth": 3}')
    MODELS = ["tree", "forest"]
    LIMIT = 10

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.train, foreach="items")

    @retry
    @step
    def train(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    def helper(self):
        return 1

    @step
    def end(self):
        pass


def test_flow_name_on_class_and_instance():
    assert TrainFlow.name == "TrainFlow"
    assert TrainFlow(use_cli=False).name == "TrainFlow"


def test_steps_parameters_and_constants_in_definition_order():
    assert [name for name, _ in TrainFlow._get_steps()] == ["start", "train", "join", "end"]
    assert [(attr, param.name) for attr, param in TrainFlow._get_parameters()] == [
        ("alpha", "alpha"),
        ("config", "config"),
    ]
    assert TrainFlow._get_constants() == [("MODELS", ["tree", "forest"]), ("LIMIT", 10)]
    assert isinstance(TrainFlow.alpha, Parameter)


def test_inherited_steps_keep_their_place_and_overrides_replace_them():
    class Base(FlowSpec):
        seed = Parameter("seed", default=1)

        @step
        def start(self):
            pass

        @step
        def end(self):
            pass

    class Child(Base):
        @step
        def start(self):
            self.overridden = True

        @step
        def middle(self):
            pass

    assert [name for name, _ in Child._get_steps()] == ["start", "end", "middle"]
    assert dict(Child._get_steps())["start"] is Child.__dict__["start"]
    assert [attr for attr, _ in Child._get_parameters()] == ["seed"]


@pytest.mark.parametrize(
    "first, second",
    [("alpha", "alpha"), ("alpha", "ALPHA"), ("learning-rate", "learning_rate")],
)
def test_two_parameters_with_one_name_fail_at_class_definition(first, second):
    with pytest.raises(FlowDefinitionError) as excinfo:

        class TwiceFlow(FlowSpec):
            a = Parameter(first)
            b = Parameter(second)

    assert message(excinfo) == (
        "parameters %r (self.a) and %r (self.b) of flow TwiceFlow have the same name. "
        "Rename one; parameter names ignore case and treat - as _." % (first, second)
    )


def test_a_parameter_named_like_a_step_fails_at_class_definition():
    with pytest.raises(FlowDefinitionError) as excinfo:

        class ClashFlow(FlowSpec):
            size = Parameter("train")

            @step
            def train(self):
                pass

    assert message(excinfo) == "parameter 'train' (self.size) has the same name as step 'train'. Rename the parameter or the step."


@pytest.mark.parametrize("attribute", ["next", "input", "index", "name", "merge_artifacts", "foreach_stack"])
def test_attributes_hiding_flowspec_fail_at_class_definition(attribute):
    with pytest.raises(FlowDefinitionError) as excinfo:
        type("HideFlow", (FlowSpec,), {attribute: Parameter("p")})
    assert message(excinfo) == "flow HideFlow defines %r, which hides FlowSpec.%s. Rename it." % (attribute, attribute)


def test_use_cli_hands_the_class_to_the_command_line(monkeypatch):
    handed = []
    fake = types.ModuleType("mflow.cli.flowfile")
    fake.run_flow_class = handed.append
    monkeypatch.setitem(sys.modules, "mflow.cli.flowfile", fake)
    TrainFlow()
    assert handed == [TrainFlow]
    TrainFlow(use_cli=False)
    assert handed == [TrainFlow]


# --- FlowSpec: parameters and constants on an instance ------------------------------------------


def test_parameter_reads_its_value_during_a_run_and_is_read_only():
    flow = TrainFlow(use_cli=False)
    with pytest.raises(AttributeError) as excinfo:
        flow.alpha
    assert str(excinfo.value) == "parameter 'alpha' (self.alpha) has no value outside a run"
    flow._set_parameter_values({"alpha": 0.25})
    flow._set_parameter_values({"config": {"depth": 5}})
    assert (flow.alpha, flow.config) == (0.25, {"depth": 5})
    with pytest.raises(FlowDefinitionError) as excinfo:
        flow.alpha = 1.0
    assert message(excinfo) == (
        "a step assigns self.alpha, which is parameter 'alpha'. Parameters are read-only; store the new value under another name."
    )
    with pytest.raises(FlowDefinitionError) as excinfo:
        del flow.alpha
    assert message(excinfo) == "a step deletes self.alpha, which is parameter 'alpha'. Parameters are read-only."
    assert flow.alpha == 0.25
    assert "alpha" not in flow._artifact_names()


def test_setting_an_unknown_parameter_names_it():
    with pytest.raises(ParameterError) as excinfo:
        TrainFlow(use_cli=False)._set_parameter_values({"beta": 1, "alpha": 2})
    assert message(excinfo) == "flow TrainFlow has no parameter beta. Give values only for alpha, config."


def test_parameter_values_belong_to_one_instance():
    first, second = TrainFlow(use_cli=False), TrainFlow(use_cli=False)
    first._set_parameter_values({"alpha": 1.0})
    assert not hasattr(second, "alpha")


def test_constants_are_writable_outside_a_run_and_read_only_in_a_step():
    flow = TrainFlow(use_cli=False)
    flow.LIMIT = 11  # plain Python use of the class keeps working
    assert flow.LIMIT == 11
    flow = TrainFlow(use_cli=False)
    flow._begin_step("train")
    with pytest.raises(FlowDefinitionError) as excinfo:
        flow.LIMIT = 12
    assert message(excinfo) == (
        "step 'train' assigns self.LIMIT, which is a class constant of flow TrainFlow. "
        "It is read-only in steps; store the value under another name."
    )
    with pytest.raises(FlowDefinitionError) as excinfo:
        flow.end = 1
    assert message(excinfo) == (
        "step 'train' assigns self.end, which is a step of flow TrainFlow. "
        "It is read-only in steps; store the value under another name."
    )
    assert flow.LIMIT == 10
    flow.score = 0.9
    assert flow._artifact_names() == ["score"]


def test_begin_step_refuses_an_unknown_step():
    with pytest.raises(ValueError):
        TrainFlow(use_cli=False)._begin_step("helper")


def test_a_flow_cannot_be_pickled_into_an_artifact():
    with pytest.raises(FlowDefinitionError) as excinfo:
        pickle.dumps(TrainFlow(use_cli=False))
    assert message(excinfo).startswith("flow TrainFlow cannot be stored as an artifact")


# --- FlowSpec: foreach state -------------------------------------------------------------------


def test_input_index_and_foreach_stack_outside_a_foreach():
    flow = TrainFlow(use_cli=False)
    assert (flow.input, flow.index, flow.foreach_stack()) == (None, None, [])
    flow._begin_step("start")
    assert (flow.input, flow.index, flow.foreach_stack()) == (None, None, [])
    assert repr(flow) == "<flow TrainFlow step start>"


def test_input_index_and_foreach_stack_in_nested_foreaches():
    flow = TrainFlow(use_cli=False)
    flow._begin_step(
        "train",
        foreach_stack=[ForeachFrame("start", "items", 1, 3, "b"), ("train", "depths", 0, 2, 7)],
    )
    assert flow.input == 7
    assert flow.index == 0
    assert flow.foreach_stack() == [(1, 3, "b"), (0, 2, 7)]
    assert repr(flow) == "<flow TrainFlow step train[1,0]>"


# --- self.next() -------------------------------------------------------------------------------


class NextFlow(FlowSpec):
    @step
    def start(self):
        pass

    @step
    def a(self):
        pass

    @step
    def b(self):
        pass

    def not_a_step(self):
        pass

    @step
    def end(self):
        pass


def started(**artifacts):
    flow = NextFlow(use_cli=False)
    flow._begin_step("start")
    for name, value in artifacts.items():
        setattr(flow, name, value)
    return flow


def test_next_linear_and_split():
    flow = started()
    flow.next(flow.a)
    assert flow._transition == Transition(("a",))
    assert flow._transition.kind == "linear"
    flow = started()
    flow.next(flow.a, flow.b)
    assert flow._transition.steps == ("a", "b")
    assert flow._transition.kind == "split"


def test_next_foreach_counts_the_items():
    flow = started(items=["x", "y"])
    flow.next(flow.a, foreach="items")
    assert flow._transition == Transition(("a",), foreach="items", num_splits=2)
    assert flow._transition.kind == "foreach"
    flow = started(items=(n for n in range(4)))
    flow.next(flow.a, foreach="items")
    assert flow._transition.num_splits == 4


def test_next_switch_picks_the_case():
    flow = started(mode="fast")
    flow.next({"fast": flow.a, "slow": flow.b, "same": flow.a}, condition="mode")
    transition = flow._transition
    assert transition.steps == ("a",)
    assert transition.kind == "switch"
    assert transition.condition == "mode"
    assert transition.cases == (("fast", "a"), ("slow", "b"), ("same", "a"))


def test_next_switch_may_read_a_parameter():
    class SwitchFlow(FlowSpec):
        route = Parameter("route", default="left")

        @step
        def start(self):
            self.next({"left": self.left, "right": self.end}, condition="route")

        @step
        def left(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    flow = SwitchFlow(use_cli=False)
    flow._set_parameter_values({"route": "right"})
    flow._begin_step("start")
    flow.start()
    assert flow._transition.steps == ("end",)


def test_transition_is_immutable():
    with pytest.raises(AttributeError):
        Transition(("a",)).steps = ("b",)


def _other_flow_step():
    return NextFlow(use_cli=False).a


@pytest.mark.parametrize(
    "call, expected",
    [
        (
            lambda f: f.next(),
            "step 'start' calls self.next() without a step. Name the next step, e.g. self.next(self.end).",
        ),
        (
            lambda f: f.next("end"),
            "argument 1 of self.next() in step 'start' is 'end', not a step of this flow. "
            "Pass a step method, e.g. self.next(self.end).",
        ),
        (
            lambda f: f.next(f.a, NextFlow.b),
            "argument 2 of self.next() in step 'start' is %r, not a step of this flow. "
            "Pass a step method, e.g. self.next(self.end)." % NextFlow.b,
        ),
        (lambda f: f.next(f.not_a_step), "step 'start' goes to 'not_a_step', which is not a step. Add @step to not_a_step."),
        (lambda f: f.next(f.a, f.a), "step 'start' names step 'a' twice in self.next(). Name each next step once."),
        (
            lambda f: f.next(f.a, num_parallel=2),
            "step 'start' passes unknown keyword num_parallel to self.next(). self.next() takes steps, foreach= or condition=.",
        ),
        (
            lambda f: f.next(f.a, foreach=["x"]),
            "step 'start' gives foreach=['x']; it must name an artifact as a string. "
            "Write e.g. self.next(self.train, foreach='params').",
        ),
        (
            lambda f: f.next(f.a, f.b, foreach="items"),
            "step 'start' has a foreach over 2 steps. A foreach goes to exactly one step.",
        ),
        (
            lambda f: f.next(f.a, foreach="missing"),
            "the foreach of step 'start' names self.missing, which does not exist. "
            "Assign self.missing before calling self.next().",
        ),
        (
            lambda f: f.next(f.a, foreach="count"),
            "the foreach of step 'start' iterates over self.count, a int, which is not iterable. "
            "Give foreach= a list or another iterable.",
        ),
        (
            lambda f: f.next(f.a, foreach="empty"),
            "the foreach of step 'start' iterates over self.empty, which is empty. Give it at least one item.",
        ),
        (
            lambda f: f.next(f.a, condition="mode"),
            "step 'start' gives condition= without a single dict of cases. "
            "Write e.g. self.next({'a': self.a, 'b': self.b}, condition='mode').",
        ),
        (
            lambda f: f.next({"x": f.a, "y": f.b}),
            "step 'start' gives a dict of cases without condition=. "
            "Write e.g. self.next({'a': self.a, 'b': self.b}, condition='mode').",
        ),
        (
            lambda f: f.next(f.a, {"x": f.a, "y": f.b}),
            "step 'start' passes self.next() a dict of cases among other steps. "
            "Write e.g. self.next({'a': self.a, 'b': self.b}, condition='mode').",
        ),
        (
            lambda f: f.next({"x": f.a, "y": f.b}, condition=1),
            "step 'start' gives condition=1; it must name an artifact as a string. "
            "Write e.g. self.next({'a': self.a, 'b': self.b}, condition='mode').",
        ),
        (
            lambda f: f.next({"x": f.a, "y": f.b}, condition="mode", foreach="items"),
            "step 'start' gives both a switch and foreach=. A switch cannot be a foreach.",
        ),
        (
            lambda f: f.next({"x": f.a}, condition="mode"),
            "the switch of step 'start' has 1 case(s). Give at least two.",
        ),
        (
            lambda f: f.next({"x": f.a, 2: f.b}, condition="mode"),
            "the switch of step 'start' has case 2; cases must be strings. "
            "Write e.g. self.next({'a': self.a, 'b': self.b}, condition='mode').",
        ),
        (
            lambda f: f.next({"x": f.a, "y": f.not_a_step}, condition="mode"),
            "step 'start' goes to 'not_a_step', which is not a step. Add @step to not_a_step.",
        ),
        (
            lambda f: f.next({"x": f.a, "y": f.b}, condition="missing"),
            "the switch of step 'start' reads self.missing, which does not exist. "
            "Assign self.missing before calling self.next().",
        ),
        (
            lambda f: f.next({"x": f.a, "y": f.b}, condition="mode"),
            "the switch of step 'start' reads self.mode = 'z', which matches no case. Set self.mode to one of 'x', 'y'.",
        ),
        (
            lambda f: f.next({"x": f.a, "y": _other_flow_step()}, condition="mode"),
            "argument 2 of self.next() in step 'start' is <bound method NextFlow.a of <flow NextFlow>>, "
            "not a step of this flow. "
            "Pass a step method, e.g. self.next(self.end).",
        ),
    ],
)
def test_next_refuses_invalid_forms_naming_the_step(call, expected):
    flow = started(items=[1], count=3, empty=[], mode="z")
    with pytest.raises(TransitionError) as excinfo:
        call(flow)
    assert message(excinfo) == expected
    assert flow._transition is None


def test_next_twice_names_the_step():
    flow = started()
    flow.next(flow.a)
    with pytest.raises(TransitionError) as excinfo:
        flow.next(flow.b)
    assert message(excinfo) == "step 'start' calls self.next() twice. Call self.next() once, as the step's last statement."
    assert flow._transition.steps == ("a",)


def test_next_outside_a_run_names_the_calling_step():
    class PlainFlow(FlowSpec):
        @step
        def start(self):
            self.next()

        @step
        def end(self):
            pass

    with pytest.raises(TransitionError) as excinfo:
        PlainFlow(use_cli=False).start()
    assert message(excinfo).startswith("step 'start' calls self.next() without a step")


def test_begin_step_clears_the_previous_transition():
    flow = started()
    flow.next(flow.a)
    flow._begin_step("a")
    assert flow._transition is None


# --- merge_artifacts ---------------------------------------------------------------------------


class JoinFlow(FlowSpec):
    seed = Parameter("seed", default=1)
    LIMIT = 5

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


def branch(step_name, **artifacts):
    flow = JoinFlow(use_cli=False)
    flow._begin_step(step_name)
    for name, value in artifacts.items():
        setattr(flow, name, value)
    return flow


def joining(**artifacts):
    return branch("join", **artifacts)


def test_merge_copies_agreed_and_disjoint_artifacts():
    inputs = Inputs([branch("a", shared=[1, 2], only_a="A"), branch("b", shared=[1, 2], only_b="B")])
    join = joining()
    join.merge_artifacts(inputs)
    assert (join.shared, join.only_a, join.only_b) == ([1, 2], "A", "B")


def test_merge_leaves_artifacts_already_set_on_self():
    join = joining(score=0)
    join.merge_artifacts([branch("a", score=1), branch("b", score=2)])
    assert join.score == 0


def test_merge_conflicts_name_the_artifacts_and_set_nothing():
    join = joining()
    with pytest.raises(FlowDefinitionError) as excinfo:
        join.merge_artifacts([branch("a", x=1, y=1, ok=1), branch("b", x=2, y=2, ok=1)])
    assert message(excinfo) == (
        "step 'join' cannot merge artifacts x, y: its inputs hold different values. "
        "Set self.x, self.y on self in the join before calling merge_artifacts, or exclude them."
    )
    assert excinfo.value.artifacts == ["x", "y"]
    assert join._artifact_names() == []


def test_merge_include_takes_only_those_and_each_must_exist():
    join = joining()
    join.merge_artifacts([branch("a", x=1, y=1), branch("b", x=1, y=2)], include=["x"])
    assert join.x == 1 and not hasattr(join, "y")
    join = joining(z=0)
    with pytest.raises(FlowDefinitionError) as excinfo:
        join.merge_artifacts([branch("a", x=1), branch("b", x=1)], include=["x", "z", "w", "v"])
    assert message(excinfo) == (
        "step 'join' asks merge_artifacts to include w, v, which no input has. "
        "Include only artifacts set in at least one branch."
    )
    assert excinfo.value.artifacts == ["w", "v"]
    assert not hasattr(join, "x")


def test_merge_exclude_skips_those():
    join = joining()
    join.merge_artifacts([branch("a", x=1, y=1), branch("b", x=2, y=1)], exclude=["x"])
    assert join.y == 1 and not hasattr(join, "x")


def test_merge_include_and_exclude_are_exclusive():
    with pytest.raises(FlowDefinitionError) as excinfo:
        joining().merge_artifacts([branch("a")], include=["x"], exclude=["y"])
    assert message(excinfo) == "step 'join' gives merge_artifacts both include= and exclude=. Give only one of them."


def test_merge_never_copies_parameters_or_constants():
    class StoredInput:
        """An input as a task runner backs it by the store: it lists parameters and constants too."""

        def __init__(self, **artifacts):
            self.__dict__.update(artifacts)

        def _artifact_names(self):
            return list(self.__dict__)

    join = joining()
    join.merge_artifacts([StoredInput(seed=1, LIMIT=5, x=1), StoredInput(seed=2, LIMIT=6, x=1)])
    assert join._artifact_names() == ["x"]


def test_merge_compares_content_keys_when_the_inputs_know_them():
    class KeyedInput:
        def __init__(self, key, **artifacts):
            self.__dict__.update(artifacts)
            self.key = key

        def _artifact_names(self):
            return ["value"]

        def _artifact_key(self, name):
            return self.key

    join = joining()
    join.merge_artifacts([KeyedInput("k1", value=[1]), KeyedInput("k1", value=[2])])
    assert join.value == [1]  # equal keys: equal content, whatever the loaded objects say
    with pytest.raises(FlowDefinitionError):
        joining().merge_artifacts([KeyedInput("k1", value=1), KeyedInput("k2", value=1)])


def test_merge_compares_array_like_values_by_their_bytes():
    join = joining()
    join.merge_artifacts([branch("a", grid=ArrayLike([1, 2])), branch("b", grid=ArrayLike([1, 2]))])
    assert join.grid.items == [1, 2]
    with pytest.raises(FlowDefinitionError):
        joining().merge_artifacts([branch("a", grid=ArrayLike([1, 2])), branch("b", grid=ArrayLike([1, 3]))])


class ArrayLike:
    """== answers element by element, as numpy arrays do."""

    def __init__(self, items):
        self.items = items

    def __eq__(self, other):
        return [a == b for a, b in zip(self.items, other.items)]


def test_merge_needs_the_join_inputs():
    with pytest.raises(FlowDefinitionError) as excinfo:
        joining().merge_artifacts(3)
    assert message(excinfo) == (
        "step 'join' calls merge_artifacts with 3, not a join's inputs. "
        "Call self.merge_artifacts(inputs) in a join step (def join(self, inputs))."
    )
    with pytest.raises(FlowDefinitionError):
        joining().merge_artifacts([])


def test_inputs_iterate_index_and_name_by_step():
    a, b = branch("a", x=1), branch("b", x=2)
    inputs = Inputs([a, b])
    assert list(inputs) == [a, b] and len(inputs) == 2 and inputs[1] is b
    assert inputs.a is a and inputs.b is b
    with pytest.raises(AttributeError) as excinfo:
        inputs.c
    assert str(excinfo.value) == "inputs has no step 'c'; it holds a, b"


def test_the_runner_hooks_carry_a_flow_from_start_to_end():
    """What a task runner does, in memory: one instance per task, artifacts handed on by name."""

    def run_task(step_name, parents, foreach_stack=()):
        flow = TrainFlow(use_cli=False)
        flow._set_parameter_values({"alpha": 0.1, "config": {"depth": 2}})
        flow._begin_step(step_name, foreach_stack)
        if len(parents) == 1:
            for name in parents[0]._artifact_names():
                setattr(flow, name, getattr(parents[0], name))
        func = getattr(flow, step_name)
        func(Inputs(parents)) if step_name == "join" else func()
        return flow

    start = run_task("start", [])
    assert start._transition.kind == "foreach" and start._transition.num_splits == 3
    branches = [
        run_task("train", [start], [ForeachFrame("start", "items", i, 3, start.items[i])])
        for i in range(start._transition.num_splits)
    ]
    assert [b.input for b in branches] == [1, 2, 3]
    join = run_task("join", branches)
    assert join.items == [1, 2, 3] and join._transition.steps == ("end",)
    end = run_task("end", [join])
    assert end._transition is None and end.alpha == 0.1


# --- current -----------------------------------------------------------------------------------


FIELDS = (
    "flow_name",
    "run_id",
    "step_name",
    "task_id",
    "retry_count",
    "origin_run_id",
    "pathspec",
    "username",
    "namespace",
    "tags",
    "parameter_names",
)


def test_current_outside_a_run():
    fresh = Current()
    assert fresh.is_running_flow is False
    assert {name: getattr(fresh, name) for name in FIELDS} == dict.fromkeys(FIELDS)
    assert "run_id" not in fresh
    assert fresh.get("run_id", "none") == "none"
    assert repr(fresh) == "<current: not in a run>"
    assert current.is_running_flow is False


def test_current_inside_a_run(monkeypatch):
    monkeypatch.setenv("MFLOW_USER", "ann")
    try:
        current._bind(
            flow_name="TrainFlow",
            run_id=17,
            step_name="train",
            task_id=4,
            tags=["a", "b"],
            parameter_names=["alpha"],
            namespace="user:ann",
        )
        assert current.is_running_flow is True
        assert current.pathspec == "TrainFlow/17/train/4"
        assert (current.run_id, current.task_id) == ("17", "4")
        assert current.retry_count == 0
        assert current.username == "ann"
        assert current.tags == frozenset(["a", "b"])
        assert current.parameter_names == ("alpha",)
        assert current.origin_run_id is None
        assert "run_id" in current and current.get("run_id") == "17"
        assert repr(current) == "<current TrainFlow/17/train/4>"
        current._bind(flow_name="TrainFlow", run_id="18", retry_count=2, username="bob")
        assert (current.step_name, current.pathspec) == (None, None)
        assert (current.retry_count, current.username) == (2, "bob")
    finally:
        current._unbind()
    assert current.is_running_flow is False and current.flow_name is None


def test_current_refuses_unknown_fields():
    with pytest.raises(TypeError):
        Current()._bind(flow="TrainFlow")


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"MFLOW_USER": "ann", "SUDO_USER": "sue", "USER": "bob"}, "ann"),
        ({"SUDO_USER": "sue", "USERNAME": "win", "USER": "bob"}, "sue"),
        ({"USERNAME": "win", "USER": "bob", "LOGNAME": "log"}, "win"),
        ({"USER": "bob", "LOGNAME": "log"}, "bob"),
        ({"MFLOW_USER": "", "LOGNAME": "log"}, "log"),
    ],
)
def test_username_resolution_order(environ, expected):
    assert resolve_username(environ) == expected


def test_username_falls_back_to_the_account():
    import pwd

    assert resolve_username({}) == pwd.getpwuid(os.getuid()).pw_name


# --- import cost -------------------------------------------------------------------------------


def test_importing_the_api_stays_light():
    code = (
        "import sys; import mflow.flow.spec, mflow.flow.current; from mflow import FlowSpec, step, Parameter; "
        "print(sorted(m for m in ('click', 'boto3', 'cloudpickle', 'json', 'pickle', 'inspect') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
