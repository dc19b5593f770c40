"""`python -m finops_operator.cli`, as the `finops-operator` script."""

import sys

from finops_operator.cli import main

if __name__ == "__main__":
    sys.exit(main())
