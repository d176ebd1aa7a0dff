"""Help text and man pages stay in step: every command, subcommand and option is documented."""

import re

import click
import pytest

from mflow.cli.commands import COMMANDS, load


def walk(command, prefix=()):
    """(path, command) for a command and, for a group, each of its subcommands."""
    yield prefix, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            yield from walk(command.get_command(ctx, name), prefix + (name,))


def man_text(repo, executable):
    path = repo / "man" / (executable + ".1")
    assert path.exists(), "no man page for %s" % executable
    roff = path.read_text()
    # Undo the roff escapes that matter for option names: \- is a hyphen, \(em a dash.
    return roff, roff.replace("\\-", "-").replace("\\fB", "").replace("\\fI", "").replace("\\fR", "")


ALL = [(name, path, command) for name in COMMANDS for path, command in walk(load(name))]


@pytest.mark.parametrize("executable, path, command", ALL, ids=[" ".join((n,) + p) for n, p, _ in ALL])
def test_every_option_is_in_the_man_page(repo, executable, path, command):
    _, text = man_text(repo, executable)
    for name in path:
        assert re.search(r"\b%s\b" % re.escape(name), text), "subcommand %s missing from man/%s.1" % (name, executable)
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text), (
                    "option %s of `%s` is not in man/%s.1" % (opt, " ".join((executable,) + path), executable)
                )


@pytest.mark.parametrize("executable, path, command", ALL, ids=[" ".join((n,) + p) for n, p, _ in ALL])
def test_every_command_has_help_with_examples(executable, path, command):
    assert command.help and command.help.strip(), "%s has no help text" % " ".join((executable,) + path)
    assert "Examples:" in command.help, "%s help has no Examples: block" % " ".join((executable,) + path)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, "option %s of %s has no help" % (param.opts[0], executable)


@pytest.mark.parametrize("executable", sorted(COMMANDS))
def test_man_page_structure(repo, executable):
    roff, text = man_text(repo, executable)
    assert roff.startswith(".TH %s 1 " % executable.upper())
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES"):
        assert re.search(r"^\.SH \"?%s\"?$" % section, roff, re.M), "man/%s.1 has no %s section" % (executable, section)


def test_every_executable_is_installed_and_mapped(repo):
    scripts = re.search(r"^scripts =\n((?:    .*\n)+)", (repo / "setup.cfg").read_text(), re.M).group(1).split()
    assert sorted(s.split("/")[-1] for s in scripts) == sorted(COMMANDS)
    for script in scripts:
        assert (repo / script).exists()


def test_every_exit_code_is_documented(repo):
    from mflow.errors import ExitCode

    _, text = man_text(repo, "mflow")
    section = text.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    for code in ExitCode:
        assert re.search(r"^\.B %d$" % code.value, section, re.M), "exit code %d (%s) not in man/mflow.1" % (code, code.name)
