"""@project: the branch a run or a deployment belongs to, and the names and tags that follow.

As in Metaflow: a user's own runs are on branch `user.NAME`, `--branch B` is `test.B`,
`--production` is `prod` (`prod.B` with a branch); the deployed flow is `PROJECT.BRANCH.Flow`.
"""

from __future__ import annotations

from mflow.errors import ParameterError
from mflow.namedtuple import NamedTuple


class ProjectInfo(NamedTuple):
    """A flow's @project name, the branch of this run or deployment, and the flow's name
    within the project (current.project_flow_name)."""

    name: str
    branch: str
    is_production: bool
    flow_name: str

    def tags(self):
        """The system tags every run on this branch gets."""
        return ("project:%s" % self.name, "project_branch:%s" % self.branch)

    def to_json(self):
        return {"name": self.name, "branch": self.branch, "is_production": self.is_production,
                "flow_name": self.flow_name}


def project_info(flow_class, branch=None, production=False, user=None):
    """The ProjectInfo of a run or deployment of `flow_class`, or None for a flow without
    @project. ParameterError when --branch or --production is given to such a flow, or the
    branch name is not one."""
    from mflow.decospec import is_branch_name
    from mflow.flow.decorators import flow_decorators

    decorator = flow_decorators(flow_class).get("project")
    if decorator is None:
        if branch is not None or production:
            option = "--branch" if branch is not None else "--production"
            raise ParameterError(
                "%s applies to a flow with @project, and flow %s has none" % (option, flow_class.__name__),
                "Add @project(name=...) above the flow class, or leave %s out" % option,
            )
        return None
    if branch is not None and not is_branch_name(branch):
        raise ParameterError(
            "--branch %r is not a branch name" % (branch,),
            "Use letters, digits, _, - and ., starting with a letter or digit (at most 64)",
        )
    if production:
        where = "prod" if branch is None else "prod.%s" % branch
    elif branch is not None:
        where = "test.%s" % branch
    else:
        from mflow.flow.current import resolve_username

        where = "user.%s" % _safe(user or resolve_username() or "unknown")
    name = decorator.attributes["name"]
    return ProjectInfo(name, where, bool(production), "%s.%s.%s" % (name, where, flow_class.__name__))


def project_from_tags(tags, flow_name):
    """The ProjectInfo a run's system tags record (project:, project_branch:), or None."""
    name = branch = None
    for tag in tags or ():
        if tag.startswith("project:"):
            name = tag[len("project:"):]
        elif tag.startswith("project_branch:"):
            branch = tag[len("project_branch:"):]
    if not name or not branch:
        return None
    return ProjectInfo(name, branch, branch == "prod" or branch.startswith("prod."), "%s.%s.%s" % (name, branch, flow_name))


def _safe(user):
    # A login may hold characters no branch may (e.g. "@" of an e-mail address).
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in user)[:64]
