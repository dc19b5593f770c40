"""Development tools beside the operator: the cluster simulator, the dev cluster and the demo.

The operator package never imports this package (an import-linter contract), except the
`demo` command, which loads it only when it runs."""
