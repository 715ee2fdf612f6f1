"""``python -m queue_exp.course.perf URL --clients N --count N|--seconds S``: the
HTTP load generator of :mod:`queue_exp.course.perf.load`, in a process of its own."""

import sys

from queue_exp.course.perf.load import main

if __name__ == "__main__":
    sys.exit(main())
