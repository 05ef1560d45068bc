"""The course's tooling: the `twdl` command line, batch runs and grading, notebook sync and references, the site, bench.

Installed with the `tools` extra (`pip install "twdl-helpers[tools]"`); students' notebooks need only
`twdl_helpers`. This package may import `twdl_helpers`; `twdl_helpers` never imports this package.
"""
