"""Partition UCSD Ped2 (official folder layout) into fold 0 (training frames) and fold 1 (test frames).

    python partition_ucsd.py --source /path/to/UCSDped2

The fold layout and the record extras are described in utils/ucsd.py.
"""

from utils.partition import partition_main
from utils.ucsd import load_ucsd_for_config, write_ucsd_folds

if __name__ == "__main__":
    partition_main(__doc__, "configs/ucsd.yaml", load_ucsd_for_config, write_partition=write_ucsd_folds)
