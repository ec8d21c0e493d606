"""Print Markdown tables of results next to GPND's published numbers.

MNIST and Fashion-MNIST get F1 and AUC per outlier percentage, COIL-100 gets AUC and F1 per
(inlier class count, outlier percentage) protocol, each as mean ± std over folds and inlier
sets. Several files (for example the results of several shards) are merged first:

    python report.py results/mnist/results.csv
    python report.py shard_0/coil100/results.csv shard_1/coil100/results.csv
"""

import argparse
import logging
import sys

from utils.results import ResultsError, format_report, read_result_files
from utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", metavar="CSV", help="results.csv files written by Testing_test_*.py")
    args = parser.parse_args()
    setup_logging()
    try:
        rows = read_result_files(args.results)
    except ResultsError as error:
        logger.error("%s", error)
        sys.exit(2)
    print(format_report(rows))


if __name__ == "__main__":
    main()
