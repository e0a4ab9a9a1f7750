"""A host's state: the layout of the state directory (:mod:`~twinsite.state.layout`) and one module per state
file, each with the file's format, its reader (validated, with a hint when it cannot be used) and its durable
writer (:mod:`twinsite.durable`). Nothing outside this package reads or writes a state file by hand
(tests/unit/test_state.py holds the library and the tests to it); docs/formats.md names each file's module.
"""
