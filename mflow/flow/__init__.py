"""The flow-authoring API: FlowSpec, @step, self.next(), Parameter, IncludeFile, current.

Users import these names from `mflow`; each lives in its own light module here.
"""
